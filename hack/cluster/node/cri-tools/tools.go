//go:build tools

// Package tools pins the crictl command built by hack/nodebuild.py.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
