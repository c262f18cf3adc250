package main

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEShowsThisCode keeps the README's receiver snippet compiled and
// tested: it must be the marked part of main.go, word for word.
func TestREADMEShowsThisCode(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(src), "// README: begin\n")
	region, _, ok2 := strings.Cut(rest, "// README: end\n")
	if !ok1 || !ok2 {
		t.Fatal("main.go has no README: begin/end markers")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+region+"```\n") {
		t.Fatalf("README.md has no go block equal to the marked part of main.go:\n%s", region)
	}
}
