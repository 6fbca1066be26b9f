package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// launch starts the instances of the templates that are not critical,
// once the registry has started: the configuration's and each pool's
// first min. One that cannot start does not fail the service's start,
// which a template the service is ready without must not decide: its pool
// logs it at error, and its supervisor retries it, backing off, until it
// starts. If ctx ends first, the pools are closed (their supervisors
// stop; the registry's Stop cleans up what started) and its error
// returned.
func (e *Engine) launch(ctx context.Context) error {
	names := make([]string, 0, len(e.pools))
	for name := range e.pools {
		if !e.settings.Templates[name].Critical {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		p := e.pools[name]
		err := p.Launch(ctx, e.later[name])
		if err == nil {
			err = p.LaunchMin(ctx)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("template %q: %w", name, err), e.closePools())
		}
	}
	return nil
}

// closePools closes every pool, within shutdown.timeout: for a start that
// failed once some pool's supervisor had begun, which no stop would end.
func (e *Engine) closePools() error {
	ctx, cancel := context.WithTimeout(context.Background(), e.settings.ShutdownTimeout)
	defer cancel()
	var errs []error
	for name, p := range e.pools {
		if err := p.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("pool %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
