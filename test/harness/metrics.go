package harness

import (
	"io"
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"
)

// Metrics are the metric families of one scrape, by name.
type Metrics map[string]*dto.MetricFamily

// ParseMetrics parses the Prometheus text format, as a Prometheus server would; a
// malformed exposition fails the test.
func ParseMetrics(t testing.TB, r io.Reader) Metrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// ScrapeMetrics GETs url (a /metrics endpoint) and parses it.
func ScrapeMetrics(t testing.TB, url string) Metrics {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s %s", url, resp.Status, b)
	}
	return ParseMetrics(t, resp.Body)
}

// Sum adds the values of family name's series whose labels include want (a histogram
// counts its samples); -1 when no series matches.
func (m Metrics) Sum(name string, want map[string]string) float64 {
	var total float64
	found := false
next:
	for _, s := range m[name].GetMetric() {
		for k, v := range want {
			ok := false
			for _, l := range s.Label {
				ok = ok || l.GetName() == k && l.GetValue() == v
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Histogram != nil:
			total += float64(s.Histogram.GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return total
}
