package b2bspool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock shared by a test and the store.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testStoreConfig(dir string) storeConfig {
	return storeConfig{
		dir:             dir,
		retain:          10 * time.Second,
		segmentDuration: 2 * time.Second,
		maxSegmentBytes: 1 << 20,
		maxTotalBytes:   8 << 20,
	}
}

func mustOpen(t *testing.T, cfg storeConfig, clock *fakeClock) *store {
	t.Helper()
	s, err := openStore(cfg, clock.now)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.close() })
	return s
}

// replayAll reopens the directory (a new run) and returns what it replays and the damage found.
func replayAll(t *testing.T, cfg storeConfig, clock *fakeClock) (*store, []string, []damage) {
	t.Helper()
	s := mustOpen(t, cfg, clock)
	var got []string
	var damaged []damage
	require.NoError(t, s.replay(func(p []byte) { got = append(got, string(p)) }, func(d damage) { damaged = append(damaged, d) }))
	return s, got, damaged
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	require.NoError(t, err)
	sort.Strings(matches)
	return matches
}

func payloads(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d-%s", prefix, i, strings.Repeat("x", i%7))
	}
	return out
}

func TestRecordsComeBackInTheOrderTheyWereWrittenAcrossSegments(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	cfg.maxSegmentBytes = 200 // a few records a segment
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	want := payloads(50, "batch")
	for _, p := range want {
		require.NoError(t, s.append([]byte(p)))
	}
	require.NoError(t, s.close())
	assert.Greater(t, len(segmentFiles(t, cfg.dir)), 5, "max_segment_bytes starts new segments")

	_, got, damaged := replayAll(t, cfg, clock)
	assert.Equal(t, want, got)
	assert.Empty(t, damaged)
}

func TestANewRunWritesToANewSegmentAfterTheLeftOnes(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	require.NoError(t, s.append([]byte("first run")))
	require.NoError(t, s.close())

	s, got, _ := replayAll(t, cfg, clock)
	require.Equal(t, []string{"first run"}, got)
	require.NoError(t, s.append([]byte("second run")))
	require.NoError(t, s.close())
	files := segmentFiles(t, cfg.dir)
	require.Len(t, files, 2)
	assert.Equal(t, "00000000000000000002.seg", filepath.Base(files[1]))

	_, got, _ = replayAll(t, cfg, clock)
	assert.Equal(t, []string{"first run", "second run"}, got)
}

func TestASegmentIsDeletedOnceItsNewestRecordIsOlderThanRetain(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	require.NoError(t, s.append([]byte("a")))
	clock.advance(time.Second)
	require.NoError(t, s.append([]byte("b"))) // the segment's newest record
	written := s.bytes()
	assert.Equal(t, int64(len(segmentMagic)+2*(recordHeader+1)), written)

	clock.advance(cfg.segmentDuration) // the segment is closed, not yet expired
	assert.Equal(t, int64(0), s.maintain())
	require.Len(t, segmentFiles(t, cfg.dir), 1)

	clock.advance(cfg.retain - cfg.segmentDuration - time.Millisecond) // 1 ms before b's retain ends
	assert.Equal(t, int64(0), s.maintain())
	require.Len(t, segmentFiles(t, cfg.dir), 1)

	clock.advance(time.Millisecond)
	assert.Equal(t, int64(1), s.maintain())
	assert.Empty(t, segmentFiles(t, cfg.dir))
	assert.Equal(t, int64(0), s.bytes())
}

func TestTheSegmentBeingWrittenIsNeverDeleted(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	cfg.segmentDuration = time.Hour
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	require.NoError(t, s.append([]byte("a")))
	clock.advance(10 * cfg.retain)
	s.maintain()
	assert.Len(t, segmentFiles(t, cfg.dir), 1)
}

func TestReplayedSegmentsAreKeptForAnotherRetainAndSurviveASecondCrash(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	require.NoError(t, s.append([]byte("a")))
	require.NoError(t, s.close()) // the first run ends (a kill leaves the same files)

	clock.advance(time.Hour) // long after a's own retain
	s, got, _ := replayAll(t, cfg, clock)
	require.Equal(t, []string{"a"}, got)
	clock.advance(cfg.retain - time.Millisecond)
	s.maintain()
	require.Len(t, segmentFiles(t, cfg.dir), 1, "kept for retain after the replay")
	require.NoError(t, s.close()) // a second crash soon after the replay

	s, got, _ = replayAll(t, cfg, clock)
	assert.Equal(t, []string{"a"}, got, "replayed again")
	clock.advance(cfg.retain)
	s.maintain()
	assert.Empty(t, segmentFiles(t, cfg.dir))
}

func TestATornLastRecordIsSkippedAndReported(t *testing.T) {
	for name, cut := range map[string]int{
		"payload cut": 3, // 3 bytes of the last record's payload missing
		"header cut":  1 + len("third") + recordHeader - 5,
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testStoreConfig(t.TempDir())
			clock := newFakeClock()
			s := mustOpen(t, cfg, clock)
			for _, p := range []string{"first", "second", "third"} {
				require.NoError(t, s.append([]byte(p)))
			}
			require.NoError(t, s.close())
			path := segmentFiles(t, cfg.dir)[0]
			info, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, info.Size()-int64(cut))) // a crash mid-write

			_, got, damaged := replayAll(t, cfg, clock)
			assert.Equal(t, []string{"first", "second"}, got)
			require.Len(t, damaged, 1)
			assert.Contains(t, damaged[0].reason, "torn record")
			assert.Equal(t, path, damaged[0].path)
		})
	}
}

func TestARecordWithAWrongCRCIsSkippedAndTheNextOnesAreKept(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	for _, p := range []string{"first", "second", "third"} {
		require.NoError(t, s.append([]byte(p)))
	}
	require.NoError(t, s.close())
	path := segmentFiles(t, cfg.dir)[0]
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	i := bytes.Index(data, []byte("second"))
	data[i] = 'S'
	require.NoError(t, os.WriteFile(path, data, 0o600))

	_, got, damaged := replayAll(t, cfg, clock)
	assert.Equal(t, []string{"first", "third"}, got)
	require.Len(t, damaged, 1)
	assert.Contains(t, damaged[0].reason, "CRC mismatch")
}

func TestAZeroFilledTailIsDamageNotEmptyRecords(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	require.NoError(t, s.append([]byte("kept")))
	require.NoError(t, s.close())
	path := segmentFiles(t, cfg.dir)[0]
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(make([]byte, 4096)) // what a machine crash without fsync can leave
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, got, damaged := replayAll(t, cfg, clock)
	assert.Equal(t, []string{"kept"}, got)
	require.Len(t, damaged, 1)
	assert.Contains(t, damaged[0].reason, "record length 0")
}

func TestAFileThatIsNoSegmentIsReportedNotRead(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	require.NoError(t, os.WriteFile(filepath.Join(cfg.dir, "00000000000000000007.seg"), []byte("something else entirely"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(cfg.dir, "notes.txt"), []byte("ignored"), 0o600))
	s, got, damaged := replayAll(t, cfg, clock)
	assert.Empty(t, got)
	require.Len(t, damaged, 1)
	assert.Contains(t, damaged[0].reason, "not a b2bspool segment")
	require.NoError(t, s.append([]byte("x")))
	assert.FileExists(t, filepath.Join(cfg.dir, "00000000000000000008.seg"))
}

func TestAFullSpoolRefusesUntilRetainFreesSpace(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	cfg.maxSegmentBytes = 1000
	cfg.maxTotalBytes = 3000
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	record := bytes.Repeat([]byte("r"), 92) // 100 bytes with its header
	accepted := 0
	var err error
	for ; accepted < 100; accepted++ {
		if err = s.append(record); err != nil {
			break
		}
	}
	require.Error(t, err)
	assert.True(t, errors.Is(err, errFull), "%v", err)
	assert.Contains(t, err.Error(), "max_total_bytes=3000")
	assert.LessOrEqual(t, s.bytes(), cfg.maxTotalBytes)
	assert.Greater(t, accepted, 25)
	assert.Less(t, accepted, 30)
	// Nothing on disk beyond the bound, whatever was refused.
	var onDisk int64
	for _, f := range segmentFiles(t, cfg.dir) {
		info, err := os.Stat(f)
		require.NoError(t, err)
		onDisk += info.Size()
	}
	assert.Equal(t, s.bytes(), onDisk)

	clock.advance(cfg.retain + cfg.segmentDuration) // every closed segment's records are older than retain
	require.NoError(t, s.append(record), "expired segments are deleted to make room")
	assert.Less(t, s.bytes(), cfg.maxTotalBytes/2)
}

func TestABatchLargerThanTheWholeBoundIsRefused(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	cfg.maxSegmentBytes = 1000
	cfg.maxTotalBytes = 2000
	s := mustOpen(t, cfg, newFakeClock())
	err := s.append(make([]byte, 2001))
	require.Error(t, err)
	assert.False(t, errors.Is(err, errFull))
	assert.Contains(t, err.Error(), "larger than max_total_bytes=2000")
}

func TestABatchLargerThanASegmentGetsASegmentOfItsOwn(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	cfg.maxSegmentBytes = 100
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	big := bytes.Repeat([]byte("b"), 500)
	require.NoError(t, s.append([]byte("small")))
	require.NoError(t, s.append(big))
	require.NoError(t, s.append([]byte("after")))
	require.NoError(t, s.close())
	assert.Len(t, segmentFiles(t, cfg.dir), 3)
	_, got, damaged := replayAll(t, cfg, clock)
	assert.Equal(t, []string{"small", string(big), "after"}, got)
	assert.Empty(t, damaged)
}

func TestASecondSpoolOnTheSameDirectoryIsRefused(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	s := mustOpen(t, cfg, newFakeClock())
	_, err := openStore(cfg, newFakeClock().now)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in use by another b2bspool")
	require.NoError(t, s.close())
	again, err := openStore(cfg, newFakeClock().now)
	require.NoError(t, err, "free once the first closed (a killed process's lock goes with it)")
	require.NoError(t, again.close())
}

func TestFsyncWritesTheSameFormat(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	cfg.fsync = true
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	require.NoError(t, s.append([]byte("synced")))
	require.NoError(t, s.close())
	_, got, _ := replayAll(t, cfg, clock)
	assert.Equal(t, []string{"synced"}, got)
}

func TestTheDirectoryIsCreatedPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "spool")
	s := mustOpen(t, testStoreConfig(dir), newFakeClock())
	require.NoError(t, s.append([]byte("x")))
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	seg, err := os.Stat(segmentFiles(t, dir)[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), seg.Mode().Perm())
}

func TestRecordsWrittenUnderALargerBoundAreReadAfterItWasLowered(t *testing.T) {
	cfg := testStoreConfig(t.TempDir())
	clock := newFakeClock()
	s := mustOpen(t, cfg, clock)
	big := bytes.Repeat([]byte("b"), 5000)
	require.NoError(t, s.append(big))
	require.NoError(t, s.close())
	cfg.maxSegmentBytes, cfg.maxTotalBytes = 1000, 2000
	_, got, damaged := replayAll(t, cfg, clock)
	assert.Equal(t, []string{string(big)}, got)
	assert.Empty(t, damaged)
}
