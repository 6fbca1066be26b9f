package config

import (
	"errors"
	"fmt"
)

// Error names a configuration field and what is wrong with it: the
// service exits 2 on it, before anything starts (see IsError).
type Error struct {
	Field   string
	Problem string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Field, e.Problem) }

// bad is the *Error of field, its problem formatted as by fmt.Sprintf.
func bad(field, format string, args ...any) error {
	return &Error{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// IsError reports whether err, from Load, is a configuration error (an
// *Error, wrapped or not) rather than -h's flag.ErrHelp.
func IsError(err error) bool {
	_, ok := errors.AsType[*Error](err)
	return ok
}
