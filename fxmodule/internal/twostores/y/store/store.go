package store

import "context"

// Client is a provider with id "y-store" that records what happens to it.
type Client struct {
	Log func(string)
}

// ID names the provider.
func (c *Client) ID() string { return "y-store" }

// Initialize records "init y-store".
func (c *Client) Initialize(context.Context) error { c.Log("init y-store"); return nil }

// Cleanup records "cleanup y-store".
func (c *Client) Cleanup(context.Context) error { c.Log("cleanup y-store"); return nil }
