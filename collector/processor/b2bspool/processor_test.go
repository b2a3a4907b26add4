package b2bspool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/b2b-otel/b2b-otel/collector/processor/b2bspool/internal/metadatatest"
)

func testConfig(dir string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = dir
	return cfg
}

// batch makes a batch of spans whose span ids encode (batch, index): distinct across a test.
func batch(n, spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "spool-test")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range spans {
		s := ss.AppendEmpty()
		var tid [16]byte
		binary.BigEndian.PutUint64(tid[8:], uint64(n))
		s.SetTraceID(tid)
		s.SetSpanID(spanID(n, i))
		s.SetName(fmt.Sprintf("span %d.%d", n, i))
		s.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + n))
		s.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + n + 1000))
	}
	return td
}

func spanID(n, i int) pcommon.SpanID {
	var id [8]byte
	binary.BigEndian.PutUint32(id[:4], uint32(n+1))
	binary.BigEndian.PutUint32(id[4:], uint32(i+1))
	return id
}

func spanIDs(batches []ptrace.Traces) []pcommon.SpanID {
	var ids []pcommon.SpanID
	for _, td := range batches {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			for j := 0; j < td.ResourceSpans().At(i).ScopeSpans().Len(); j++ {
				spans := td.ResourceSpans().At(i).ScopeSpans().At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					ids = append(ids, spans.At(k).SpanID())
				}
			}
		}
	}
	return ids
}

func start(t *testing.T, set processor.Settings, cfg *Config, next consumer.Traces, clock func() time.Time) *spool {
	t.Helper()
	require.NoError(t, cfg.Validate())
	p, err := newSpool(set, cfg, next, clock)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	return p
}

func TestLifecycleStartConsumeShutdown(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Directory = t.TempDir()
	sink := &consumertest.TracesSink{}
	p, err := f.CreateTraces(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, sink)
	require.NoError(t, err)
	assert.False(t, p.Capabilities().MutatesData)
	require.NoError(t, p.Start(context.Background(), componenttest.NewNopHost()))
	td := batch(1, 3)
	td.MarkReadOnly() // a processor that does not mutate gets read-only data
	require.NoError(t, p.ConsumeTraces(context.Background(), td))
	require.NoError(t, p.Shutdown(context.Background()))
	assert.Equal(t, 3, sink.SpanCount())
}

func TestShutdownWithoutStartIsHarmless(t *testing.T) {
	p, err := NewFactory().CreateTraces(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), testConfig(t.TempDir()), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, p.Shutdown(context.Background()))
}

// The batch is on disk when the next component sees it: what the receiver acknowledges, a
// restart can replay.
func TestTheBatchIsInTheSpoolBeforeTheNextComponentGetsIt(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var onDisk []int
	next, err := consumer.NewTraces(func(_ context.Context, td ptrace.Traces) error {
		n := 0
		for _, path := range segmentFiles(t, cfg.Directory) {
			require.NoError(t, readSegment(path, func(p []byte) {
				got, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(p)
				require.NoError(t, err)
				n += got.SpanCount()
			}, func(d damage) { t.Errorf("damage: %+v", d) }))
		}
		onDisk = append(onDisk, n)
		return nil
	})
	require.NoError(t, err)
	p := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, next, time.Now)
	for i := range 3 {
		require.NoError(t, p.ConsumeTraces(context.Background(), batch(i, 4)))
	}
	require.NoError(t, p.Shutdown(context.Background()))
	assert.Equal(t, []int{4, 8, 12}, onDisk)
}

func TestARestartReplaysWhatThePreviousRunLeftInOrderBeforeNewData(t *testing.T) {
	dir := t.TempDir()
	first := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), testConfig(dir), consumertest.NewNop(), time.Now)
	var sent []ptrace.Traces
	for i := range 20 {
		td := batch(i, 5)
		sent = append(sent, td)
		require.NoError(t, first.ConsumeTraces(context.Background(), td))
	}
	simulateKill(t, first)

	tt := componenttest.NewTelemetry()
	sink := &consumertest.TracesSink{}
	second := start(t, metadatatest.NewSettings(tt), testConfig(dir), sink, time.Now)
	require.Len(t, sink.AllTraces(), 20, "replayed during Start, before any receiver runs")
	assert.Equal(t, spanIDs(sent), spanIDs(sink.AllTraces()))
	require.NoError(t, second.ConsumeTraces(context.Background(), batch(100, 1)))
	assert.Equal(t, []pcommon.SpanID{spanID(100, 0)}, spanIDs(sink.AllTraces()[20:]))

	metadatatest.AssertEqualProcessorB2bspoolRecordsReplayed(t, tt, []metricdata.DataPoint[int64]{{Value: 20}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorB2bspoolSpansReplayed(t, tt, []metricdata.DataPoint[int64]{{Value: 100}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorB2bspoolRecordsWritten(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorB2bspoolSpansWritten(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, second.Shutdown(context.Background()))
}

// simulateKill ends a run the way kill -9 does as far as the spool can tell: the files stay as
// they are, the kernel drops the lock. No flush, no close of the segment by the processor.
func simulateKill(t *testing.T, p *spool) {
	t.Helper()
	close(p.stop)
	p.done.Wait()
	s := p.current()
	require.NoError(t, unlockDirectory(s.lock))
	if s.curFile != nil {
		_ = s.curFile.Close()
	}
	p.telemetry.Shutdown()
}

func TestATornRecordIsCountedAndTheRestReplayed(t *testing.T) {
	dir := t.TempDir()
	first := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), testConfig(dir), consumertest.NewNop(), time.Now)
	for i := range 3 {
		require.NoError(t, first.ConsumeTraces(context.Background(), batch(i, 2)))
	}
	simulateKill(t, first)
	path := segmentFiles(t, dir)[0]
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, info.Size()-7)) // the kill hit the last write

	tt := componenttest.NewTelemetry()
	sink := &consumertest.TracesSink{}
	second := start(t, metadatatest.NewSettings(tt), testConfig(dir), sink, time.Now)
	assert.Equal(t, 4, sink.SpanCount())
	metadatatest.AssertEqualProcessorB2bspoolRecordsCorrupt(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorB2bspoolRecordsReplayed(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, second.Shutdown(context.Background()))
}

func TestARecordThatDoesNotDecodeIsCountedCorrupt(t *testing.T) {
	cfg := testConfig(t.TempDir())
	s, err := openStore(storeConfig{dir: cfg.Directory, retain: cfg.Retain, segmentDuration: cfg.SegmentDuration,
		maxSegmentBytes: cfg.MaxSegmentBytes, maxTotalBytes: cfg.MaxTotalBytes}, time.Now)
	require.NoError(t, err)
	require.NoError(t, s.append([]byte{0xff, 0xff, 0xff})) // a valid record, not a protobuf batch
	require.NoError(t, s.close())

	tt := componenttest.NewTelemetry()
	sink := &consumertest.TracesSink{}
	p := start(t, metadatatest.NewSettings(tt), cfg, sink, time.Now)
	assert.Equal(t, 0, sink.SpanCount())
	metadatatest.AssertEqualProcessorB2bspoolRecordsCorrupt(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, p.Shutdown(context.Background()))
}

func TestAFullSpoolRefusesWithARetryableErrorAndPassesNothingOn(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxSegmentBytes = 4096
	cfg.MaxTotalBytes = 8192
	tt := componenttest.NewTelemetry()
	sink := &consumertest.TracesSink{}
	p := start(t, metadatatest.NewSettings(tt), cfg, sink, time.Now)
	var err error
	accepted := 0
	for i := 0; i < 1000 && err == nil; i++ {
		if err = p.ConsumeTraces(context.Background(), batch(i, 10)); err == nil {
			accepted++
		}
	}
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "the sender retries: %v", err)
	assert.Contains(t, err.Error(), "max_total_bytes=8192")
	assert.Equal(t, accepted*10, sink.SpanCount(), "a refused batch goes nowhere")
	metadatatest.AssertEqualProcessorB2bspoolRecordsRefused(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	usage := p.current().bytes()
	assert.LessOrEqual(t, usage, cfg.MaxTotalBytes)
	metadatatest.AssertEqualProcessorB2bspoolDiskUsage(t, tt, []metricdata.DataPoint[int64]{{Value: usage}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, p.Shutdown(context.Background()))
}

func TestABatchLargerThanTheBoundIsAPermanentError(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxSegmentBytes = 512
	cfg.MaxTotalBytes = 1024
	p := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewNop(), time.Now)
	err := p.ConsumeTraces(context.Background(), batch(1, 200))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "retrying cannot help: %v", err)
	require.NoError(t, p.Shutdown(context.Background()))
}

func TestExpiredSegmentsAreDeletedInTheBackgroundAndCounted(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Retain = 50 * time.Millisecond
	cfg.SegmentDuration = 20 * time.Millisecond
	tt := componenttest.NewTelemetry()
	p := start(t, metadatatest.NewSettings(tt), cfg, consumertest.NewNop(), time.Now)
	require.NoError(t, p.ConsumeTraces(context.Background(), batch(1, 1)))
	require.Len(t, segmentFiles(t, cfg.Directory), 1)
	require.Eventually(t, func() bool { return len(segmentFiles(t, cfg.Directory)) == 0 }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		m, err := tt.GetMetric("otelcol_processor_b2bspool_segments_deleted")
		if err != nil {
			return false
		}
		sum, ok := m.Data.(metricdata.Sum[int64])
		return ok && len(sum.DataPoints) == 1 && sum.DataPoints[0].Value == 1
	}, 5*time.Second, 10*time.Millisecond)
	metadatatest.AssertEqualProcessorB2bspoolDiskUsage(t, tt, []metricdata.DataPoint[int64]{{Value: 0}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, p.Shutdown(context.Background()))
}

func TestADownstreamRefusalIsPassedBackAndTheBatchStaysSpooled(t *testing.T) {
	cfg := testConfig(t.TempDir())
	boom := errors.New("downstream refused")
	p := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewErr(boom), time.Now)
	require.ErrorIs(t, p.ConsumeTraces(context.Background(), batch(1, 2)), boom)
	require.NoError(t, p.Shutdown(context.Background()))
	sink := &consumertest.TracesSink{}
	again := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, sink, time.Now)
	assert.Equal(t, 2, sink.SpanCount())
	require.NoError(t, again.Shutdown(context.Background()))
}

func TestTwoSpoolsOnOneDirectoryFailToStart(t *testing.T) {
	cfg := testConfig(t.TempDir())
	p := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewNop(), time.Now)
	other, err := newSpool(metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewNop(), time.Now)
	require.NoError(t, err)
	err = other.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), cfg.Directory)
	require.NoError(t, other.Shutdown(context.Background()))
	require.NoError(t, p.Shutdown(context.Background()))
}

// Concurrent pipelines (the receiver's handlers) write at once, segments rotate and expire meanwhile:
// every span is spooled exactly once, and a restart replays each exactly once. Run with -race.
func TestConcurrentWritersLoseAndDuplicateNothing(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxSegmentBytes = 4096
	cfg.SegmentDuration = 5 * time.Millisecond
	cfg.Retain = time.Hour
	tt := componenttest.NewTelemetry()
	var passed sync.Map
	next, err := consumer.NewTraces(func(_ context.Context, td ptrace.Traces) error {
		for _, id := range spanIDs([]ptrace.Traces{td}) {
			_, dup := passed.LoadOrStore(id, true)
			assert.False(t, dup, "span %s passed on twice", id)
		}
		return nil
	})
	require.NoError(t, err)
	p := start(t, metadatatest.NewSettings(tt), cfg, next, time.Now)
	const writers, batches, spans = 8, 100, 3
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				assert.NoError(t, p.ConsumeTraces(context.Background(), batch(w*batches+b, spans)))
			}
		}()
	}
	wg.Wait()
	metadatatest.AssertEqualProcessorB2bspoolSpansWritten(t, tt, []metricdata.DataPoint[int64]{{Value: writers * batches * spans}}, metricdatatest.IgnoreTimestamp())
	require.NoError(t, p.Shutdown(context.Background()))
	assert.Greater(t, len(segmentFiles(t, cfg.Directory)), 5)

	sink := &consumertest.TracesSink{}
	again := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, sink, time.Now)
	ids := spanIDs(sink.AllTraces())
	assert.Len(t, ids, writers*batches*spans)
	unique := map[pcommon.SpanID]bool{}
	for _, id := range ids {
		unique[id] = true
	}
	assert.Len(t, unique, writers*batches*spans)
	require.NoError(t, again.Shutdown(context.Background()))
}

func TestTheSpoolDirectoryHoldsOnlySegmentsAndTheLock(t *testing.T) {
	cfg := testConfig(t.TempDir())
	p := start(t, metadatatest.NewSettings(componenttest.NewTelemetry()), cfg, consumertest.NewNop(), time.Now)
	require.NoError(t, p.ConsumeTraces(context.Background(), batch(1, 1)))
	require.NoError(t, p.Shutdown(context.Background()))
	entries, err := os.ReadDir(cfg.Directory)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{".lock", "00000000000000000001.seg"}, names)
}
