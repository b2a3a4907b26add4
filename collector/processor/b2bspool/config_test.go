package b2bspool

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/b2b-otel/b2b-otel/collector/processor/b2bspool/internal/metadata"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.MustNewIDWithName(metadata.Type.String(), name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

func TestTheDefaultsNeedOnlyADirectory(t *testing.T) {
	cfg := loadConfig(t, "")
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "/var/lib/otelcol/spool", cfg.Directory)
	assert.Equal(t, DefaultRetain, cfg.Retain)
	assert.Equal(t, DefaultSegmentDuration, cfg.SegmentDuration)
	assert.Equal(t, int64(DefaultMaxSegmentBytes), cfg.MaxSegmentBytes)
	assert.Equal(t, int64(DefaultMaxTotalBytes), cfg.MaxTotalBytes)
	assert.False(t, cfg.Fsync, "a kill -9 keeps the page cache; fsync is for machine crashes")
}

func TestEverySettingIsRead(t *testing.T) {
	cfg := loadConfig(t, "custom")
	require.NoError(t, cfg.Validate())
	assert.Equal(t, 2*time.Minute, cfg.Retain)
	assert.Equal(t, 10*time.Second, cfg.SegmentDuration)
	assert.Equal(t, int64(1<<20), cfg.MaxSegmentBytes)
	assert.Equal(t, int64(64<<20), cfg.MaxTotalBytes)
	assert.True(t, cfg.Fsync)
}

func TestEveryBadSettingIsNamed(t *testing.T) {
	err := loadConfig(t, "bad").Validate()
	require.Error(t, err)
	for _, want := range []string{
		"directory: required",
		"retain=0s: must be positive",
		"segment_duration=-1s: must be positive",
		"max_segment_bytes=0: must be positive",
		"max_total_bytes=-5: must be positive",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestTheBoundMustHoldASegment(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxSegmentBytes = 1 << 20
	cfg.MaxTotalBytes = 1 << 19
	assert.ErrorContains(t, cfg.Validate(), "max_total_bytes=524288: must be positive and at least max_segment_bytes=1048576")
}
