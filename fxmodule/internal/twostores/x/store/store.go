package store

import "context"

// Client is a provider with id "x-store" that records what happens to it.
type Client struct {
	Log func(string)
}

// ID names the provider.
func (c *Client) ID() string { return "x-store" }

// Initialize records "init x-store".
func (c *Client) Initialize(context.Context) error { c.Log("init x-store"); return nil }

// Cleanup records "cleanup x-store".
func (c *Client) Cleanup(context.Context) error { c.Log("cleanup x-store"); return nil }
