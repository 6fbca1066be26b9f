package app

import (
	"context"
	"encoding/json"
	"fmt"
)

// listKeys are MCP's paged lists, each with the member of its result that
// holds the page's items.
var listKeys = map[string]string{
	"tools/list":               "tools",
	"prompts/list":             "prompts",
	"resources/list":           "resources",
	"resources/templates/list": "resourceTemplates",
}

// maxListPages bounds the pages of one list that the service follows: a
// server whose cursors never end must not hold the task to its timeout
// for nothing.
const maxListPages = 1000

// wholeList answers an MCP list a caller asked for without a cursor: every
// page, its items in one array and no nextCursor, so that a caller does
// not page what a task answers at once. A caller that passes a cursor
// pages for itself: nil, false.
func wholeList(ctx context.Context, call func(context.Context, json.RawMessage) (json.RawMessage, error),
	method string, params json.RawMessage) (json.RawMessage, bool, error) {
	key, ok := listKeys[method]
	if !ok {
		return nil, false, nil
	}
	p := map[string]json.RawMessage{}
	if len(params) > 0 && string(params) != "null" {
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, false, nil // the handler's checks answer it
		}
	}
	if _, ok := p["cursor"]; ok {
		return nil, false, nil
	}
	var items []json.RawMessage
	seen := map[string]bool{}
	page := params
	for n := 1; ; n++ {
		out, err := call(ctx, page)
		if err != nil {
			return out, true, err
		}
		var result map[string]json.RawMessage
		var got []json.RawMessage
		var next string
		if err := json.Unmarshal(out, &result); err != nil {
			return nil, true, fmt.Errorf("%s: page %d is not a JSON object: %w", method, n, err)
		}
		if raw, ok := result[key]; ok {
			if err := json.Unmarshal(raw, &got); err != nil {
				return nil, true, fmt.Errorf("%s: page %d: %s is not an array: %w", method, n, key, err)
			}
		}
		items = append(items, got...)
		if raw, ok := result["nextCursor"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &next); err != nil {
				return nil, true, fmt.Errorf("%s: page %d: nextCursor is not a string: %w", method, n, err)
			}
		}
		if next == "" {
			if items == nil {
				items = []json.RawMessage{}
			}
			result[key], _ = json.Marshal(items)
			delete(result, "nextCursor")
			whole, err := json.Marshal(result)
			return whole, true, err
		}
		switch {
		case seen[next]:
			return nil, true, fmt.Errorf("%s: the server gave cursor %.64q twice: its list does not end", method, next)
		case n == maxListPages:
			return nil, true, fmt.Errorf("%s: the server's list did not end within %d pages", method, maxListPages)
		}
		seen[next] = true
		p["cursor"], _ = json.Marshal(next)
		page, _ = json.Marshal(p)
	}
}
