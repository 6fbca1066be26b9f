package main

import (
	"os"

	"github.com/gleitzeit/gleitzeit/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Getenv, os.Stderr))
}
