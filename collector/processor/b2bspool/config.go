package b2bspool // import "github.com/b2b-otel/b2b-otel/collector/processor/b2bspool"

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the optional settings (directory has none: it must be given).
const (
	DefaultRetain          = 60 * time.Second
	DefaultSegmentDuration = 5 * time.Second
	DefaultMaxSegmentBytes = 16 << 20 // 16 MiB
	DefaultMaxTotalBytes   = 1 << 30  // 1 GiB
)

// Config of the b2bspool processor.
type Config struct {
	// Directory holds the segment files and a lock file; one b2bspool (of one collector process) per
	// directory. Created (0700) when missing.
	Directory string `mapstructure:"directory"`
	// Retain is how long a record is kept after it was written. It must cover what the components
	// after the spool hold in memory: the tail_sampling processor's decision_wait, plus its tick
	// (1s), plus the time until the exporter's persistent sending queue holds the decided spans.
	// Default 60s (six times the gateway's 10s decision_wait).
	Retain time.Duration `mapstructure:"retain"`
	// SegmentDuration is how long one segment file takes records before the next is started; a
	// segment is deleted whole once its newest record is older than retain. Default 5s.
	SegmentDuration time.Duration `mapstructure:"segment_duration"`
	// MaxSegmentBytes starts the next segment before one grows past it (a batch larger than it gets
	// a segment of its own). Default 16 MiB.
	MaxSegmentBytes int64 `mapstructure:"max_segment_bytes"`
	// MaxTotalBytes bounds the directory's segment files: a batch that would pass it (after deleting
	// what retain allows) is refused with an error, which the sender retries. Default 1 GiB.
	MaxTotalBytes int64 `mapstructure:"max_total_bytes"`
	// Fsync syncs each record to the disk before the batch is passed on. Off (default), a record is in
	// the operating system's page cache when it is passed on: that survives a kill -9 of the
	// collector, not a crash or power loss of the machine, which needs fsync: true.
	Fsync bool `mapstructure:"fsync"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// Validate checks every setting and names the one at fault with what is accepted.
func (c *Config) Validate() error {
	var errs []error
	if c.Directory == "" {
		errs = append(errs, errors.New("directory: required (where the segment files are kept, one b2bspool per directory)"))
	}
	if c.Retain <= 0 {
		errs = append(errs, fmt.Errorf("retain=%s: must be positive, and cover the tail_sampling decision_wait + 1s + the time to the exporter's persistent queue (default %s)", c.Retain, DefaultRetain))
	}
	if c.SegmentDuration <= 0 {
		errs = append(errs, fmt.Errorf("segment_duration=%s: must be positive (default %s)", c.SegmentDuration, DefaultSegmentDuration))
	}
	if c.MaxSegmentBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_segment_bytes=%d: must be positive (default %d)", c.MaxSegmentBytes, DefaultMaxSegmentBytes))
	}
	if c.MaxTotalBytes < c.MaxSegmentBytes || c.MaxTotalBytes <= 0 {
		errs = append(errs, fmt.Errorf("max_total_bytes=%d: must be positive and at least max_segment_bytes=%d (default %d)", c.MaxTotalBytes, c.MaxSegmentBytes, DefaultMaxTotalBytes))
	}
	return errors.Join(errs...)
}
