//go:build tools

// Package tools pins the etcd commands built by hack/cluster.sh.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
