package b2bderive // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive"

// Gauge rules on metrics (metrics -> logs): `source: {metric: NAME}` reads every data point of a
// gauge or sum of that name; `source: {computed: pool_utilisation}` divides, per resource and pool,
// the used connections of db.client.connection.count (state=used) by db.client.connection.max of the
// same batch. As with spans, the metrics of a b2b_otel process (b2b.derived=true) were judged by its
// own Python layer and are left alone.

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"
	"github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/semconv"
)

type metricsToLogs struct {
	core *core
	next consumer.Logs
}

func (m *metricsToLogs) Start(context.Context, component.Host) error { return nil }
func (m *metricsToLogs) Shutdown(context.Context) error {
	m.core.release()
	return nil
}
func (m *metricsToLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

// pool is what one batch says of one connection pool of one resource.
type pool struct {
	used, max       float64
	hasUsed, hasMax bool
	attrs           pcommon.Map // the data point's attributes with the pool name
}

func (m *metricsToLogs) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	e := m.core.engine
	if e.GaugeRules() == 0 {
		return nil
	}
	out := plog.NewLogs()
	// A gauge firing's marker span goes where the span firings' markers go (the traces -> traces
	// instance's pipeline, when the configuration has one), as the root of a trace of its own: a
	// metric data point belongs to no trace. The Python layer does the same.
	_, markersNext := m.core.consumers()
	markers := ptrace.NewTraces()
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		if judgedByProcess(rm.Resource()) {
			continue
		}
		var records plog.LogRecordSlice
		var markerSpans ptrace.SpanSlice
		started := false
		fire := func(firings []engine.Firing) {
			for n := range firings {
				if !started {
					records = startResource(out, rm.Resource())
					if markersNext != nil {
						markerSpans = startMarkerResource(markers, rm.Resource())
					}
					started = true
				}
				m.core.countFiring(ctx, &firings[n])
				writeRecord(records.AppendEmpty(), &firings[n])
				if markersNext != nil {
					writeMarker(markerSpans.AppendEmpty(), &firings[n])
				}
			}
		}
		pools := map[string]*pool{}
		var order []string
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				metric := ms.At(k)
				points, ok := numberPoints(metric)
				if !ok {
					continue
				}
				name := metric.Name()
				if e.ReadsGauge(name) {
					for p := 0; p < points.Len(); p++ {
						dp := points.At(p)
						fire(e.JudgeGauge(name, pointValue(dp), dp.Attributes()))
					}
				}
				if engine.IsPoolMetric(name) && e.ReadsGauge(engine.PoolUtilisation) {
					collectPools(name, points, pools, &order)
				}
			}
		}
		for _, key := range order {
			p := pools[key]
			if p.hasUsed && p.hasMax && p.max > 0 {
				fire(e.JudgeGauge(engine.PoolUtilisation, p.used/p.max, p.attrs))
			}
		}
	}
	m.core.emit(ctx, m.next, out, markersNext, markers)
	return nil
}

func numberPoints(metric pmetric.Metric) (pmetric.NumberDataPointSlice, bool) {
	switch metric.Type() {
	case pmetric.MetricTypeGauge:
		return metric.Gauge().DataPoints(), true
	case pmetric.MetricTypeSum:
		return metric.Sum().DataPoints(), true
	}
	return pmetric.NumberDataPointSlice{}, false
}

func pointValue(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// collectPools adds the used (state=used) and max connections per pool name of a batch's points.
func collectPools(name string, points pmetric.NumberDataPointSlice, pools map[string]*pool, order *[]string) {
	for p := 0; p < points.Len(); p++ {
		dp := points.At(p)
		poolName, ok := dp.Attributes().Get(semconv.DBClientConnectionPoolNameKey)
		if !ok {
			continue
		}
		key := poolName.AsString()
		entry := pools[key]
		if entry == nil {
			entry = &pool{attrs: pcommon.NewMap()}
			entry.attrs.PutStr(semconv.DBClientConnectionPoolNameKey, key)
			pools[key] = entry
			*order = append(*order, key)
		}
		if name == semconv.MetricDBClientConnectionMax {
			entry.max, entry.hasMax = pointValue(dp), true
			continue
		}
		if state, ok := dp.Attributes().Get(semconv.StateKey); ok && state.AsString() == semconv.StateUsed {
			entry.used += pointValue(dp)
			entry.hasUsed = true
		}
	}
}
