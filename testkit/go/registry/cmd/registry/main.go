// The distribution registry as the tests run it: upstream's cmd/registry with the storage
// drivers and middleware of the cloud (Azure, GCS, S3, CloudFront) left out, which halves
// the cold build. The tests use the filesystem driver and htpasswd auth; the registry code
// that serves them is upstream's, unchanged.
package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() {
	// RootCmd exits non-zero itself when a command fails.
	_ = registry.RootCmd.Execute()
}
