//go:build tools

// Package tools pins the local-path-provisioner command built by hack/nodebuild.py.
package tools

import (
	_ "github.com/rancher/local-path-provisioner"
)
