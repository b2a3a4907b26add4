//go:build !unix

package b2bspool // import "github.com/b2b-otel/b2b-otel/collector/processor/b2bspool"

import "os"

// lockDirectory without flock: the lock file is created but not locked, so two spools on one
// directory are not detected on this platform; give each collector its own directory.
func lockDirectory(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func unlockDirectory(f *os.File) error { return f.Close() }
