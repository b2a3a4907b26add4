package b2bspool // import "github.com/b2b-otel/b2b-otel/collector/processor/b2bspool"

// The spool on disk: a directory of append-only segment files named by a sequence number
// (00000000000000000001.seg, ...), and a lock file. A segment starts with an 8-byte magic; then
// records, each
//
//	length   uint32, big endian: the payload's bytes (1 .. max_total_bytes)
//	crc      uint32, big endian: CRC-32 (Castagnoli) of the payload
//	payload  length bytes (here: one batch of spans, ptrace's protobuf encoding)
//
// A record is written with one write call, and kept until its segment is deleted whole: once the
// segment's newest record is older than retain. Segments a previous run left are read back in
// sequence order; the first damaged spot of a segment (a torn last record of a crash mid-write, a
// length past the file's end) ends its reading, a record whose CRC does not match is skipped.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	segmentMagic   = "B2BSPL\x00\x01"
	segmentSuffix  = ".seg"
	lockName       = ".lock"
	recordHeader   = 8
	segmentNameLen = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errFull is the refusal at max_total_bytes: retryable, the sender tries again later.
var errFull = errors.New("spool full")

type segment struct {
	seq  uint64
	path string
	size int64
	// deleteAfter: when the segment may go (its newest record + retain; for the segments of a
	// previous run, the end of their replay + retain). Zero for the segment being written.
	deleteAfter time.Time
	newest      time.Time
}

type storeConfig struct {
	dir             string
	retain          time.Duration
	segmentDuration time.Duration
	maxSegmentBytes int64
	maxTotalBytes   int64
	fsync           bool
}

// store is the spool directory of one processor. All methods are safe for concurrent use.
type store struct {
	cfg  storeConfig
	now  func() time.Time
	lock *os.File

	mu        sync.Mutex
	closed    []*segment // oldest first; not written any more
	leftover  []*segment // a previous run's, until replay ends (then in closed)
	cur       *segment
	curFile   *os.File
	curOpened time.Time
	total     int64 // bytes of every segment file, the current one included
	nextSeq   uint64
	deleted   int64 // segments deleted so far (for telemetry)
}

// openStore creates the directory if needed, takes its lock (one spool per directory, across
// processes too) and lists the segments a previous run left there.
func openStore(cfg storeConfig, now func() time.Time) (*store, error) {
	if err := os.MkdirAll(cfg.dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory %s: %w", cfg.dir, err)
	}
	lock, err := lockDirectory(filepath.Join(cfg.dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("directory %s: %w", cfg.dir, err)
	}
	s := &store{cfg: cfg, now: now, lock: lock, nextSeq: 1}
	entries, err := os.ReadDir(cfg.dir)
	if err != nil {
		_ = unlockDirectory(lock)
		return nil, fmt.Errorf("directory %s: %w", cfg.dir, err)
	}
	for _, e := range entries {
		seq, ok := segmentSeq(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // deleted meanwhile
		}
		s.leftover = append(s.leftover, &segment{seq: seq, path: filepath.Join(cfg.dir, e.Name()), size: info.Size()})
		s.total += info.Size()
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
	}
	sort.Slice(s.leftover, func(i, j int) bool { return s.leftover[i].seq < s.leftover[j].seq })
	return s, nil
}

func segmentSeq(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok || len(digits) != segmentNameLen {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// leftovers is how many segments a previous run left (before replay).
func (s *store) leftovers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.leftover)
}

// damage is one damaged spot found while reading a segment back.
type damage struct {
	path   string
	offset int64
	reason string
}

// replay reads every leftover segment in sequence order and hands each intact payload to deliver;
// each damaged spot goes to damaged. The leftover segments are kept for another retain from the
// end of the replay (a second crash during or soon after it loses nothing).
func (s *store) replay(deliver func(payload []byte), damaged func(damage)) error {
	s.mu.Lock()
	leftover := s.leftover
	s.mu.Unlock()
	for _, seg := range leftover {
		if err := readSegment(seg.path, deliver, damaged); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	until := s.now().Add(s.cfg.retain)
	for _, seg := range leftover {
		seg.deleteAfter = until
	}
	s.closed = append(leftover, s.closed...)
	s.leftover = nil
	return nil
}

// readSegment reads one segment back. A record's length is trusted only as far as the file reaches
// (not against max_total_bytes, which may have been lowered since the record was written).
func readSegment(path string, deliver func([]byte), damaged func(damage)) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	if size == 0 {
		return nil // created, nothing written yet
	}
	r := bufio.NewReaderSize(f, 1<<16)
	magic := make([]byte, len(segmentMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		damaged(damage{path, 0, fmt.Sprintf("torn segment header (%d bytes)", size)})
		return nil
	}
	if string(magic) != segmentMagic {
		damaged(damage{path, 0, "not a b2bspool segment (unknown header); its content is skipped"})
		return nil
	}
	offset := int64(len(segmentMagic))
	var header [recordHeader]byte
	for offset < size {
		if size-offset < recordHeader {
			damaged(damage{path, offset, fmt.Sprintf("torn record: %d bytes of an 8-byte header at the end", size-offset)})
			return nil
		}
		if _, err := io.ReadFull(r, header[:]); err != nil {
			return fmt.Errorf("%s at offset %d: %w", path, offset, err)
		}
		length := int64(binary.BigEndian.Uint32(header[0:4]))
		sum := binary.BigEndian.Uint32(header[4:8])
		if length == 0 {
			// Never written (an empty batch is not spooled): zeros a machine crash left at the end.
			damaged(damage{path, offset, fmt.Sprintf("record length 0; the rest of the segment (%d bytes) is skipped", size-offset)})
			return nil
		}
		if length > size-offset-recordHeader {
			damaged(damage{path, offset, fmt.Sprintf("torn record: %d of %d payload bytes at the end", size-offset-recordHeader, length)})
			return nil
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return fmt.Errorf("%s at offset %d: %w", path, offset, err)
		}
		if crc32.Checksum(payload, castagnoli) != sum {
			damaged(damage{path, offset, fmt.Sprintf("CRC mismatch in a record of %d bytes; skipped", length)})
		} else {
			deliver(payload)
		}
		offset += recordHeader + length
	}
	return nil
}

// append writes one record; when it returns nil the record is in the operating system (and on the
// disk with fsync). errFull (wrapped) when it would pass max_total_bytes.
func (s *store) append(payload []byte) error {
	n := int64(recordHeader + len(payload))
	if int64(len(payload)) > s.cfg.maxTotalBytes || len(payload) > int(^uint32(0)) {
		return fmt.Errorf("a batch of %d bytes is larger than max_total_bytes=%d", len(payload), s.cfg.maxTotalBytes)
	}
	buf := make([]byte, recordHeader, n)
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(buf[4:8], crc32.Checksum(payload, castagnoli))
	buf = append(buf, payload...)

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cur != nil && (s.cur.size+n > s.cfg.maxSegmentBytes || now.Sub(s.curOpened) >= s.cfg.segmentDuration) {
		s.rotateLocked(now)
	}
	extra := n
	if s.cur == nil {
		extra += int64(len(segmentMagic))
	}
	if s.total+extra > s.cfg.maxTotalBytes {
		s.expireLocked(now)
		if s.total+extra > s.cfg.maxTotalBytes {
			return fmt.Errorf("%w: %s holds %d bytes, max_total_bytes=%d, a record of %d bytes does not fit", errFull, s.cfg.dir, s.total, s.cfg.maxTotalBytes, n)
		}
	}
	if s.cur == nil {
		if err := s.openSegmentLocked(now); err != nil {
			return err
		}
	}
	written, err := s.curFile.Write(buf)
	s.cur.size += int64(written)
	s.total += int64(written)
	if err == nil && s.cfg.fsync {
		err = s.curFile.Sync()
	}
	if err != nil {
		// A partly written record would hide every later one of this segment: the next record
		// goes to a new segment (this one's torn end is found and skipped at replay).
		path := s.cur.path
		s.rotateLocked(now)
		return fmt.Errorf("segment %s: %w", path, err)
	}
	s.cur.newest = now
	return nil
}

func (s *store) openSegmentLocked(now time.Time) error {
	seg := &segment{seq: s.nextSeq, path: filepath.Join(s.cfg.dir, fmt.Sprintf("%0*d%s", segmentNameLen, s.nextSeq, segmentSuffix))}
	f, err := os.OpenFile(seg.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("segment %s: %w", seg.path, err)
	}
	s.nextSeq++
	written, err := f.Write([]byte(segmentMagic))
	seg.size = int64(written)
	s.total += int64(written)
	if err == nil && s.cfg.fsync {
		// The new file's directory entry too: a machine crash must not lose the whole segment.
		if err = f.Sync(); err == nil {
			err = syncDirectory(s.cfg.dir)
		}
	}
	if err != nil {
		_ = f.Close()
		s.closed = append(s.closed, seg)
		seg.deleteAfter = now.Add(s.cfg.retain)
		return fmt.Errorf("segment %s: %w", seg.path, err)
	}
	s.cur, s.curFile, s.curOpened = seg, f, now
	return nil
}

// rotateLocked closes the segment being written; it may go once its newest record is older than
// retain.
func (s *store) rotateLocked(now time.Time) {
	if s.cur == nil {
		return
	}
	if s.cfg.fsync {
		_ = s.curFile.Sync()
	}
	_ = s.curFile.Close()
	newest := s.cur.newest
	if newest.IsZero() {
		newest = now
	}
	s.cur.deleteAfter = newest.Add(s.cfg.retain)
	s.closed = append(s.closed, s.cur)
	s.cur, s.curFile = nil, nil
}

// expireLocked deletes the closed segments whose time is up.
func (s *store) expireLocked(now time.Time) {
	kept := s.closed[:0]
	for _, seg := range s.closed {
		if now.Before(seg.deleteAfter) {
			kept = append(kept, seg)
			continue
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			kept = append(kept, seg)
			continue
		}
		s.total -= seg.size
		s.deleted++
	}
	for i := len(kept); i < len(s.closed); i++ {
		s.closed[i] = nil
	}
	s.closed = kept
}

// maintain closes the segment being written once it is segment_duration old and deletes what
// retain lets go; the processor calls it periodically. It returns the segments deleted so far.
func (s *store) maintain() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cur != nil && now.Sub(s.curOpened) >= s.cfg.segmentDuration {
		s.rotateLocked(now)
	}
	s.expireLocked(now)
	return s.deleted
}

// bytes is what the segment files hold.
func (s *store) bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// close closes the segment being written (every segment stays on disk: a restart replays them,
// tail_sampling drops what it has not decided at shutdown) and releases the directory.
func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.curFile != nil {
		if s.cfg.fsync {
			err = s.curFile.Sync()
		}
		err = errors.Join(err, s.curFile.Close())
		s.curFile, s.cur = nil, nil
	}
	if s.lock != nil {
		err = errors.Join(err, unlockDirectory(s.lock))
		s.lock = nil
	}
	return err
}

func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
