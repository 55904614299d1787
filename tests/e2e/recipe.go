package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ensemble/tests/framework"
)

// readmeRecipe reads the three-member recipe from the README (the block
// between the "three-member-recipe" markers) and returns the arguments of each
// `./ensemble` command in it, with its ports moved to free ones and its data
// directories moved under dir, so that the test runs exactly what users run.
func readmeRecipe(t testing.TB, dir string) framework.ClusterSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "<!-- three-member-recipe -->")
	end := strings.Index(text, "<!-- /three-member-recipe -->")
	if start < 0 || end < start {
		t.Fatalf("README.md has no three-member-recipe block")
	}
	block := strings.ReplaceAll(text[start:end], "\\\n", " ")
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "&"))
		if !strings.HasPrefix(line, "./ensemble ") && !strings.HasPrefix(line, "go run ./cmd/ensemble ") {
			continue
		}
		fields := strings.Fields(line)
		if fields[0] == "go" {
			fields = fields[3:]
		} else {
			fields = fields[1:]
		}
		cmds = append(cmds, fields)
	}
	if len(cmds) != 3 {
		t.Fatalf("README recipe has %d ensemble commands, want 3", len(cmds))
	}
	portRe := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	ports := map[string]string{}
	var spec framework.ClusterSpec
	for _, args := range cmds {
		joined := strings.Join(args, "\x00")
		for _, m := range portRe.FindAllStringSubmatch(joined, -1) {
			if _, ok := ports[m[1]]; !ok {
				ports[m[1]] = fmt.Sprint(framework.FreePorts(t, 1)[0])
			}
		}
		joined = portRe.ReplaceAllStringFunc(joined, func(s string) string {
			return "127.0.0.1:" + ports[portRe.FindStringSubmatch(s)[1]]
		})
		args = strings.Split(joined, "\x00")
		var m framework.MemberSpec
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--name":
				m.Name = args[i+1]
			case "--data-dir":
				args[i+1] = filepath.Join(dir, args[i+1])
				m.DataDir = args[i+1]
			case "--advertise-client-urls":
				m.ClientURL = args[i+1]
			case "--initial-advertise-peer-urls":
				m.PeerURL = args[i+1]
			}
		}
		m.ExtraFlags = args
		spec.Members = append(spec.Members, m)
	}
	spec.Raw = true
	return spec
}
