//go:build unix

package b2bspool // import "github.com/b2b-otel/b2b-otel/collector/processor/b2bspool"

import (
	"errors"
	"os"
	"syscall"
)

// lockDirectory takes an exclusive flock on path: a second b2bspool on the same directory, in this
// process or another, fails instead of interleaving segments. The kernel drops the lock with the
// process, so a killed collector leaves none behind.
func lockDirectory(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New("in use by another b2bspool (another collector process, or a second b2bspool of this one): give each its own directory")
		}
		return nil, err
	}
	return f, nil
}

func unlockDirectory(f *os.File) error {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return f.Close()
}
