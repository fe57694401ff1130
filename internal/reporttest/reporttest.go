// Package reporttest checks the rendered forms of edgefw's audit report
// for tests: the JSON form against the schema documented in
// docs/report.schema.json, the HTML form as a browser parses it (with its
// charts), and as headless Chromium draws it.
package reporttest

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/net/html"
)

// SchemaPath is the report's JSON Schema, from the module's root.
const SchemaPath = "docs/report.schema.json"

// moduleRoot is the directory holding go.mod, above the test's package.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// ValidateJSON fails the test unless data validates against the report's
// schema, formats (date-time) asserted.
func ValidateJSON(t testing.TB, data []byte) {
	t.Helper()
	path := filepath.Join(moduleRoot(t), SchemaPath)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("report.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("report.schema.json")
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the report is not JSON: %v", err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Errorf("the report does not validate against %s: %v", SchemaPath, err)
	}
}

// HTMLDoc is what CheckHTML found in a parsed HTML report.
type HTMLDoc struct {
	// Charts counts the <svg> elements with a data-chart attribute and
	// at least one <rect> carrying data (data-date or data-state), by
	// the chart's kind: traffic, tunnel.
	Charts map[string]int
	// Text is the document's text, for looking for sentences.
	Text string
	// External lists the references to anything outside the file
	// (scripts, stylesheets, images, fonts by URL).
	External []string
	// Scripts counts <script> elements.
	Scripts int
}

// CheckHTML parses data as a browser would (golang.org/x/net/html) and
// returns what it holds; it fails the test if data does not parse.
func CheckHTML(t testing.TB, data []byte) HTMLDoc {
	t.Helper()
	root, err := html.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the HTML report does not parse: %v", err)
	}
	doc := HTMLDoc{Charts: map[string]int{}}
	var text strings.Builder
	for n := range root.Descendants() {
		switch {
		case n.Type == html.TextNode:
			text.WriteString(n.Data)
		case n.Type != html.ElementNode:
		case n.Data == "svg" && attr(n, "data-chart") != "" && hasDataRect(n):
			doc.Charts[attr(n, "data-chart")]++
		case n.Data == "script":
			doc.Scripts++
		}
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if (a.Key == "src" || a.Key == "href" && n.Data == "link") && a.Val != "" {
					doc.External = append(doc.External, n.Data+" "+a.Key+"="+a.Val)
				}
			}
		}
	}
	doc.Text = strings.Join(strings.Fields(text.String()), " ")
	return doc
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasDataRect(svg *html.Node) bool {
	for n := range svg.Descendants() {
		if n.Type == html.ElementNode && n.Data == "rect" && (attr(n, "data-date") != "" || attr(n, "data-state") != "") {
			return true
		}
	}
	return false
}

// Chromium renders a local HTML file with headless Chromium to a
// 1280×2000 screenshot and returns it decoded. command builds the
// process (exec.Command, or a namespace's), so that a test can keep the
// browser off the host's network. The browser's profile, cache and home
// are in a directory of the test's own.
func Chromium(t testing.TB, command func(name string, args ...string) *exec.Cmd, htmlFile string) image.Image {
	t.Helper()
	dir := t.TempDir()
	shot := filepath.Join(dir, "report.png")
	cmd := command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1280,2000",
		"file://"+htmlFile)
	cmd.Env = []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_CACHE_HOME=" + dir, "PATH=/usr/bin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("chromium did not finish within 2 minutes\n%s", out.String())
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v\n%s", err, out.String())
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	return img
}

// Ink measures a screenshot: how many distinct colours it has and the
// share of its pixels that are not white (nor nearly).
func Ink(img image.Image) (colours int, inked float64) {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	var ink, all int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			all++
			if r>>8 < 240 || g>>8 < 240 || bl>>8 < 240 {
				ink++
			}
		}
	}
	if all == 0 {
		return 0, 0
	}
	return len(seen), float64(ink) / float64(all)
}

// CheckScreenshot fails the test unless img has more than one colour and
// at least minInk of its pixels inked, and returns what it measured.
func CheckScreenshot(t testing.TB, img image.Image, minInk float64) string {
	t.Helper()
	colours, inked := Ink(img)
	got := fmt.Sprintf("%d colours, %.1f%% of %dx%d pixels inked", colours, inked*100, img.Bounds().Dx(), img.Bounds().Dy())
	if colours < 2 || inked < minInk {
		t.Errorf("chromium rendered a blank page: %s; want more than one colour and at least %.1f%% inked", got, minInk*100)
	}
	return got
}
