package main

import (
	"os"
	"testing"

	"github.com/drydock-dev/drydock/internal/simcluster"
)

var cluster *simcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(simcluster.Main(m, &cluster, simcluster.Options{}))
}
