package main

import (
	"encoding/xml"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// fakeThroughput is a throughput result shaped like a real run's:
// around 20,000 req/s, latencies from tens of microseconds to milliseconds.
func fakeThroughput(r *rand.Rand, store string) *throughputResult {
	t := &throughputResult{Store: store, Concurrency: 16, Slice: 500 * time.Millisecond}
	for range 12 {
		t.MeRPS = append(t.MeRPS, 20000+1000*r.Float64())
		t.JWKSRPS = append(t.JWKSRPS, 23000+1000*r.Float64())
	}
	for range 5000 {
		t.Me.Record(time.Duration(100e3 + r.ExpFloat64()*500e3))
		t.JWKS.Record(time.Duration(80e3 + r.ExpFloat64()*400e3))
	}
	return t
}

// fakeRevocation has a third of its trials at 0, as when B refused before
// the DELETE returned.
func fakeRevocation(r *rand.Rand, strict bool) *revocationResult {
	v := &revocationResult{Trials: 300, Strict: strict}
	for i := range v.Trials {
		if i%3 == 0 {
			v.Visible.Record(0)
		} else {
			v.Visible.Record(time.Duration(50e3 + r.ExpFloat64()*300e3))
		}
	}
	return v
}

func fakeReport(scenarios []string, args ...string) *report {
	r := rand.New(rand.NewPCG(3, 4))
	c := &config{args: args, scenarios: map[string]bool{}}
	for _, s := range scenarios {
		c.scenarios[s] = true
	}
	rep := &report{Started: time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC), Machine: "test", Config: c}
	if c.scenarios["throughput"] {
		rep.Throughput = []*throughputResult{fakeThroughput(r, "SQLite"), fakeThroughput(r, "Redis")}
	}
	if c.scenarios["revocation"] {
		rep.Revocation = []*revocationResult{fakeRevocation(r, false), fakeRevocation(r, true)}
	}
	if c.scenarios["login"] {
		rep.Login = []*loginResult{{Store: "SQLite", Logins: 3, ServerLogin: 31 * time.Millisecond, ServerVerify: 29 * time.Millisecond,
			LoginS: []float64{.032, .033, .034}, VerifS: []float64{.028, .029, .030}}}
	}
	return rep
}

// svgTexts returns the text elements of an SVG document.
func svgTexts(t *testing.T, svg []byte) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	var texts []string
	in := false
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			in = tok.Name.Local == "text"
		case xml.CharData:
			if in {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			in = false
		}
	}
	if len(texts) == 0 {
		t.Fatalf("no text in the SVG:\n%.500s", svg)
	}
	return texts
}

// checkPanels checks that every panel draws data, that its labelled
// ticks are distinct, and that its legend lies inside the chart and
// beside, not over, every plot.
func checkPanels(t *testing.T, rep *report, wantTitles ...string) {
	t.Helper()
	ps, err := rep.chartPanels()
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, p := range ps {
		titles = append(titles, p.plot.Title.Text)
	}
	if !slices.Equal(titles, wantTitles) {
		t.Fatalf("panels %q, want %q", titles, wantTitles)
	}
	l := rep.layout(ps)
	whole := vg.Rectangle{Max: vg.Point{X: l.width, Y: chartH}}
	for i, p := range ps {
		var labels []string
		for _, tk := range p.plot.Y.Tick.Marker.Ticks(p.plot.Y.Min, p.plot.Y.Max) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if len(labels) < 2 || len(slices.Compact(slices.Clone(labels))) != len(labels) {
			t.Errorf("%s: y tick labels %q, want two or more, all different", titles[i], labels)
		}
		if p.plot.Y.Min >= p.plot.Y.Max {
			t.Errorf("%s: y axis from %v to %v", titles[i], p.plot.Y.Min, p.plot.Y.Max)
		}
		lg := l.legends[i]
		if lg.Min.X < whole.Min.X || lg.Max.X > whole.Max.X || lg.Min.Y < whole.Min.Y || lg.Max.Y > whole.Max.Y {
			t.Errorf("%s: legend at %v, outside the chart %v", titles[i], lg, whole)
		}
		if need := p.legend.Rectangle(draw.Canvas{}).Size(); need.X > lg.Size().X+1e-6 || need.Y > lg.Size().Y+1e-6 {
			t.Errorf("%s: legend needs %v, has %v", titles[i], need, lg.Size())
		}
		for j, pl := range l.plots {
			if lg.Min.X < pl.Max.X && pl.Min.X < lg.Max.X {
				t.Errorf("%s: legend %v overlaps plot %d at %v", titles[i], lg, j, pl)
			}
		}
		if pl := l.plots[i]; pl.Size().X < 150 || pl.Size().Y < 150 {
			t.Errorf("%s: plot only %v", titles[i], pl.Size())
		}
	}
}

func TestChartOfTheFullSuite(t *testing.T) {
	rep := fakeReport(allScenarios, "-out", "docs/benchmarks.md")
	checkPanels(t, rep, "Throughput (median slice)", "Latency (log scale)")
	svg, err := rep.chartSVG()
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Join(svgTexts(t, svg), "\n")
	for _, want := range []string{
		"Written by go run ./bench -out docs/benchmarks.md",
		"GET /api/v1/me", "GET /.well-known/jwks.json",
		"/me, SQLite", "JWKS, SQLite", "/me, Redis", "JWKS, Redis", "revoked → refused on B", "same, strict mode",
		"p50", "p99.9", "max", "Revocation: from the DELETE",
	} {
		if !strings.Contains(texts, want) {
			t.Errorf("the chart has no %q; its texts:\n%s", want, texts)
		}
	}
}

func TestChartOfASubsetShowsOnlyWhatRan(t *testing.T) {
	t.Run("revocation", func(t *testing.T) {
		rep := fakeReport([]string{"revocation"}, "-scenarios", "revocation", "-trials", "300")
		checkPanels(t, rep, "Latency (log scale)")
		svg, err := rep.chartSVG()
		if err != nil {
			t.Fatal(err)
		}
		texts := strings.Join(svgTexts(t, svg), "\n")
		for _, want := range []string{"Written by go run ./bench -scenarios revocation -trials 300", "revoked → refused on B", "same, strict mode"} {
			if !strings.Contains(texts, want) {
				t.Errorf("the chart has no %q; its texts:\n%s", want, texts)
			}
		}
		for _, absent := range []string{"Throughput", "GET /api/v1/me", "/me, SQLite", "JWKS"} {
			if strings.Contains(texts, absent) {
				t.Errorf("the chart of a revocation-only run shows %q; its texts:\n%s", absent, texts)
			}
		}
	})
	t.Run("throughput", func(t *testing.T) {
		rep := fakeReport([]string{"throughput"}, "-scenarios", "throughput", "-rounds", "2")
		rep.Throughput = rep.Throughput[:1]
		checkPanels(t, rep, "Throughput (median slice)", "Latency (log scale)")
		svg, err := rep.chartSVG()
		if err != nil {
			t.Fatal(err)
		}
		texts := strings.Join(svgTexts(t, svg), "\n")
		for _, want := range []string{"GET /api/v1/me", "GET /.well-known/jwks.json", "/me, SQLite", "JWKS, SQLite"} {
			if !strings.Contains(texts, want) {
				t.Errorf("the chart has no %q; its texts:\n%s", want, texts)
			}
		}
		for _, absent := range []string{"Redis", "revoked", "Revocation"} {
			if strings.Contains(texts, absent) {
				t.Errorf("the chart of a throughput-only run on SQLite shows %q; its texts:\n%s", absent, texts)
			}
		}
	})
	t.Run("nothing charted", func(t *testing.T) {
		rep := fakeReport([]string{"login"}, "-scenarios", "login")
		svg, err := rep.chartSVG()
		if err != nil || svg != nil {
			t.Fatalf("chart of a login-only run: %d bytes, %v; want none", len(svg), err)
		}
	})
}

// A run that charts nothing writes no chart, removes the one an earlier
// run left, and its report links none; every report names the command.
func TestReportNamesItsCommandAndItsChart(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.md")
	svgPath := strings.TrimSuffix(out, ".md") + ".svg"

	rep := fakeReport([]string{"revocation"}, "-scenarios", "revocation", "-out", out)
	rep.Config.out = out
	if err := rep.write(rep.Config); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(svgPath); err != nil {
		t.Fatalf("no chart: %v", err)
	}
	for _, want := range []string{
		"Written by `go run ./bench -scenarios revocation -out " + out + "`",
		"did not run throughput, peers, memory, scale, login, outbox, micro",
		"![Latency (log scale)](bench.svg)",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("the report has no %q:\n%.1500s", want, md)
		}
	}

	rep = fakeReport([]string{"login"}, "-scenarios", "login", "-out", out)
	rep.Config.out = out
	if err := rep.write(rep.Config); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(svgPath); !os.IsNotExist(err) {
		t.Errorf("the chart of the earlier run is still there (%v)", err)
	}
	md, _ = os.ReadFile(out)
	if strings.Contains(string(md), ".svg") {
		t.Errorf("a login-only report links a chart:\n%.1500s", md)
	}
	if !strings.Contains(string(md), "Written by `go run ./bench -scenarios login -out "+out+"`") {
		t.Errorf("the report does not name its command:\n%.800s", md)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"-out":               "-out",
		"docs/benchmarks.md": "docs/benchmarks.md",
		"throughput,login":   "throughput,login",
		"a b":                "'a b'",
		"it's":               `'it'\''s'`,
		"":                   "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Whatever the range, an axis has two or more labelled ticks, all
// different, all within the range.
func TestTicksAreNeverDegenerate(t *testing.T) {
	for _, c := range []struct {
		name   string
		ticker interface {
			Ticks(lo, hi float64) []plot.Tick
		}
		lo, hi float64
	}{
		{"rates", rateTicks{}, 0, 27000},
		{"rates", rateTicks{}, 0, 115},
		{"rates", rateTicks{}, 0, 1.15},
		{"rates", rateTicks{}, 0, 0.0345},
		{"rates", rateTicks{}, 0, 1e6},
		{"durations", durationTicks{}, 1e-4, 1e-2},
		{"durations", durationTicks{}, 1e-6, 1e-5},
		{"durations", durationTicks{}, 1e-9, 10},
		{"durations", durationTicks{}, 1e-3, 1},
	} {
		var labels []string
		for _, tk := range c.ticker.Ticks(c.lo, c.hi) {
			if tk.Value < c.lo-1e-12 || tk.Value > c.hi*(1+1e-9) {
				t.Errorf("%s %g-%g: tick at %g", c.name, c.lo, c.hi, tk.Value)
			}
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if len(labels) < 2 || len(labels) > 12 || len(slices.Compact(slices.Clone(labels))) != len(labels) {
			t.Errorf("%s %g-%g: labels %q, want 2 to 12, all different", c.name, c.lo, c.hi, labels)
		}
	}
}
