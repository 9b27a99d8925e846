//go:build tools

// Package tools pins the CoreDNS command built by hack/nodebuild.py.
package tools

import (
	_ "github.com/coredns/coredns"
)
