package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// readmeSection returns the README's "coordination recipes" section.
func readmeSection() (string, error) {
	const start, end = "<!-- recipes -->", "<!-- /recipes -->"
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		return "", err
	}
	text := string(b)
	i, j := strings.Index(text, start), strings.Index(text, end)
	if i < 0 || j < i {
		return "", errors.New("no coordination recipes section (between <!-- recipes --> markers) in README.md")
	}
	return text[i:j], nil
}

// goBlocks returns the ```go blocks of markdown text.
func goBlocks(text string) []string {
	var blocks []string
	for {
		i := strings.Index(text, "```go\n")
		if i < 0 {
			return blocks
		}
		text = text[i+len("```go\n"):]
		j := strings.Index(text, "```")
		if j < 0 {
			return blocks
		}
		blocks = append(blocks, text[:j])
		text = text[j:]
	}
}

// snippetProgram puts every snippet of the section into its program, each
// in its own function literal, reading the endpoint from $ENDPOINT.
func snippetProgram() (string, error) {
	section, err := readmeSection()
	if err != nil {
		return "", err
	}
	blocks := goBlocks(section)
	if len(blocks) < 2 || !strings.Contains(blocks[0], "package main") || !strings.Contains(blocks[0], "\t// snippet\n") {
		return "", fmt.Errorf("the recipes section must start with the program skeleton (with a \"// snippet\" line), then the snippets; found %d go blocks", len(blocks))
	}
	var body strings.Builder
	for _, s := range blocks[1:] {
		body.WriteString("\tfunc() {\n")
		for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			body.WriteString("\t\t" + line + "\n")
		}
		body.WriteString("\t}()\n")
	}
	prog := strings.Replace(blocks[0], "\t// snippet\n", body.String(), 1)
	prog = strings.Replace(prog, `"127.0.0.1:2379"`, `os.Getenv("ENDPOINT")`, 1)
	return strings.Replace(prog, "\t\"log\"\n", "\t\"log\"\n\t\"os\"\n", 1), nil
}

var snippets struct {
	once sync.Once
	bin  string
	err  string
}

// testReadmeSnippets builds the README's snippets into one program (once)
// and runs it against the backend: every snippet must run to its end.
func testReadmeSnippets(t *testing.T, b *backend) {
	snippets.once.Do(func() {
		prog, err := snippetProgram()
		if err != nil {
			snippets.err = err.Error()
			return
		}
		dir := filepath.Join(tmpRoot, "readme")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			snippets.err = err.Error()
			return
		}
		src := filepath.Join(dir, "main.go")
		if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
			snippets.err = err.Error()
			return
		}
		snippets.bin = filepath.Join(dir, "snippets")
		wd, _ := os.Getwd()
		cmd := exec.Command("go", "build", "-o", snippets.bin, src)
		cmd.Dir = filepath.Join(wd, "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			snippets.err = "go build of the README snippets: " + err.Error() + "\n" + string(out) + "\nprogram:\n" + prog
		}
	})
	if snippets.err != "" {
		t.Fatal(snippets.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, snippets.bin)
	cmd.Env = append(os.Environ(), "ENDPOINT="+b.endpoints[0])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README snippets failed against %s: %v\n%s", b.name, err, out)
	}
	t.Logf("README snippets against %s:\n%s", b.name, out)
}
