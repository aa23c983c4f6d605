package vec

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestGeneratedCurrent fails when gemv512_amd64.s is not what
// gen_gemv512.go writes (run `go generate ./model/internal/vec`).
func TestGeneratedCurrent(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	want, err := exec.Command(goBin, "run", "gen_gemv512.go").Output()
	if err != nil {
		t.Fatalf("go run gen_gemv512.go: %v", err)
	}
	got, err := os.ReadFile("gemv512_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("gemv512_amd64.s differs from gen_gemv512.go's output: run go generate ./model/internal/vec")
	}
}
