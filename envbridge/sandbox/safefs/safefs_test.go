package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// both runs f with openat2 and with the O_NOFOLLOW walk.
func both(t *testing.T, f func(t *testing.T)) {
	for _, o2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("openat2=%v", o2), func(t *testing.T) {
			old := useOpenat2
			useOpenat2 = o2
			defer func() { useOpenat2 = old }()
			f(t)
		})
	}
}

// layout: base/secret.txt (outside), base/ws (the root), base/ws/output.
func layout(t *testing.T) (base, ws string, d *Dir) {
	t.Helper()
	base = t.TempDir()
	ws = filepath.Join(base, "ws")
	must(t, os.MkdirAll(filepath.Join(ws, "output"), 0o755))
	must(t, os.WriteFile(filepath.Join(base, "secret.txt"), []byte("SECRET"), 0o644))
	d, err := OpenDir(ws)
	must(t, err)
	t.Cleanup(func() { d.Close() })
	return base, ws, d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSymlinkChains: links that are absolute, relative, chained through
// directories and through other links, at many depths, all of which
// resolve outside the root on the host (and some that stay inside) are
// refused as symbolic links; the outside file is never read.
func TestSymlinkChains(t *testing.T) {
	both(t, func(t *testing.T) {
		base, ws, d := layout(t)
		out := filepath.Join(ws, "output")
		secret := filepath.Join(base, "secret.txt")
		depth := strings.Count(out, "/")
		for _, n := range []int{1, 3, depth, depth + 1, depth + 7, 40} {
			// output/c/c/.../c/p -> ../../.. (n levels: resolves to output,
			// lexically inside), sub -> c/.../c/p/../..(n)/<secret>: as text
			// it stays inside output, on the host it climbs to /.
			dir := filepath.Join(out, fmt.Sprint("n", n))
			chain := strings.Repeat("c/", n)
			must(t, os.MkdirAll(filepath.Join(dir, chain), 0o755))
			must(t, os.Symlink(strings.Repeat("../", n), filepath.Join(dir, chain, "p")))
			target := chain + "p/" + strings.Repeat("../", n+depth+2) + strings.TrimPrefix(secret, "/")
			must(t, os.Symlink(target, filepath.Join(dir, "submission.csv")))
			if b, err := os.ReadFile(filepath.Join(dir, "submission.csv")); err != nil || string(b) != "SECRET" {
				t.Fatalf("n=%d: the attack itself does not reach the secret on the host (%q, %v)", n, b, err)
			}
			rel := fmt.Sprintf("output/n%d/submission.csv", n)
			if _, err := d.ReadFile(rel, 1<<20); !errors.Is(err, ErrSymlink) || err.Error() != rel+": is a symbolic link" {
				t.Errorf("n=%d: ReadFile = %v, want %s: is a symbolic link", n, err, rel)
			}
			// Through a directory link: output/nN/dl -> c/.../p/../..(secret dir).
			must(t, os.Symlink(chain+"p/"+strings.Repeat("../", n+depth+2)+strings.TrimPrefix(base, "/"), filepath.Join(dir, "dl")))
			if _, err := d.ReadFile(fmt.Sprintf("output/n%d/dl/secret.txt", n), 1<<20); !errors.Is(err, ErrSymlink) ||
				!strings.HasPrefix(err.Error(), fmt.Sprintf("output/n%d/dl: ", n)) {
				t.Errorf("n=%d: through a directory link: %v", n, err)
			}
		}
		must(t, os.Symlink(secret, filepath.Join(out, "abs.csv")))
		must(t, os.Symlink("inside.csv", filepath.Join(out, "rel.csv")))
		must(t, os.WriteFile(filepath.Join(out, "inside.csv"), []byte("ok"), 0o644))
		for _, rel := range []string{"output/abs.csv", "output/rel.csv"} {
			if _, err := d.ReadFile(rel, 1<<20); !errors.Is(err, ErrSymlink) {
				t.Errorf("%s: %v", rel, err)
			}
		}
		// The root's own folder replaced by a link.
		must(t, os.Rename(out, filepath.Join(ws, "real")))
		must(t, os.Symlink(base, out))
		if _, err := d.ReadFile("output/../secret.txt", 1<<20); !errors.Is(err, ErrBadName) {
			t.Errorf("..: %v", err)
		}
		if _, err := d.ReadFile("output/secret.txt", 1<<20); !errors.Is(err, ErrSymlink) || !strings.HasPrefix(err.Error(), "output: ") {
			t.Errorf("linked folder: %v", err)
		}
		if b, err := d.ReadFile("real/inside.csv", 1<<20); err != nil || string(b) != "ok" {
			t.Errorf("regular file: %q %v", b, err)
		}
		if _, err := d.ReadFile("real/missing.csv", 1<<20); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing: %v", err)
		}
		for _, bad := range []string{"", "/etc/passwd", "a//b", "./a", "a/.."} {
			if _, err := d.ReadFile(bad, 1); !errors.Is(err, ErrBadName) {
				t.Errorf("%q: %v", bad, err)
			}
		}
		// Lstat and RemoveAll act on the link, never on its target.
		if m, _, err := d.Lstat("output"); err != nil || m&fs.ModeSymlink == 0 {
			t.Errorf("Lstat link: %v %v", m, err)
		}
		must(t, d.RemoveAll("output", Limits{}))
		if _, err := os.Stat(secret); err != nil {
			t.Fatalf("Remove followed the link: %v", err)
		}
	})
}

// TestSpecialFilesRefused: a FIFO, a socket and a device node are refused
// at once (no open, no read that could block), and a FIFO left open by
// nobody does not hang.
func TestSpecialFilesRefused(t *testing.T) {
	both(t, func(t *testing.T) {
		_, ws, d := layout(t)
		out := filepath.Join(ws, "output")
		must(t, unix.Mkfifo(filepath.Join(out, "fifo"), 0o644))
		ln, err := net.Listen("unix", filepath.Join(out, "sock"))
		must(t, err)
		defer ln.Close()
		names := []string{"fifo", "sock"}
		if os.Geteuid() == 0 {
			must(t, unix.Mknod(filepath.Join(out, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
			names = append(names, "zero")
		} else {
			t.Log("not root: device node case skipped (mknod needs CAP_MKNOD)")
		}
		must(t, os.Mkdir(filepath.Join(out, "dir"), 0o755))
		names = append(names, "dir")
		for _, n := range names {
			done := make(chan error, 1)
			go func() { _, err := d.ReadFile("output/"+n, 1<<20); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) {
					t.Errorf("%s: %v", n, err)
				}
				t.Logf("%s: %v", n, err)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: read blocked", n)
			}
		}
	})
}

// TestSizeCap: a file over the cap is refused from its size (a sparse
// 1 TiB file costs nothing), and the reader stops at the cap.
func TestSizeCap(t *testing.T) {
	_, ws, d := layout(t)
	p := filepath.Join(ws, "output", "big.csv")
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(1<<40))
	f.Close()
	_, err = d.ReadFile("output/big.csv", 64<<20)
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != 64<<20 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sparse 1 TiB: %v", err)
	}
	t.Log(err)
	must(t, os.WriteFile(p, []byte(strings.Repeat("x", 100)), 0o644))
	if b, err := d.ReadFile("output/big.csv", 100); err != nil || len(b) != 100 {
		t.Fatalf("exactly the cap: %d %v", len(b), err)
	}
	if _, err := d.ReadFile("output/big.csv", 99); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one past the cap: %v", err)
	}
	r := LimitReader(strings.NewReader(strings.Repeat("y", 1000)), 10, time.Time{})
	buf := make([]byte, 4096)
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err != nil {
			if !errors.Is(err, ErrTooLarge) || total != 10 {
				t.Fatalf("LimitReader: %d bytes, %v", total, err)
			}
			break
		}
	}
}

// TestWalkBounded: a walk never follows links and stops at its bounds.
func TestWalkBounded(t *testing.T) {
	both(t, func(t *testing.T) {
		base, ws, d := layout(t)
		out := filepath.Join(ws, "output")
		for i := range 50 {
			must(t, os.WriteFile(filepath.Join(out, fmt.Sprint("f", i)), nil, 0o644))
		}
		must(t, os.Symlink(base, filepath.Join(out, "up")))
		must(t, os.MkdirAll(filepath.Join(out, "a", "b", "c"), 0o755))
		var seen []string
		err := d.Walk("", Limits{}, func(e Entry) error {
			seen = append(seen, e.Rel)
			return nil
		})
		must(t, err)
		for _, s := range seen {
			if strings.Contains(s, "secret") || strings.HasPrefix(s, "output/up/") {
				t.Fatalf("walk followed a link: %s", s)
			}
		}
		if len(seen) != 50+1+3+1 {
			t.Fatalf("walk saw %d entries: %v", len(seen), seen)
		}
		err = d.Walk("output", Limits{MaxEntries: 10}, func(Entry) error { return nil })
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "more than 10 entries") {
			t.Fatalf("entry bound: %v", err)
		}
		err = d.Walk("output", Limits{MaxDepth: 2}, func(Entry) error { return nil })
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "deeper than 2") {
			t.Fatalf("depth bound: %v", err)
		}
		if err := d.Walk("output/up", Limits{}, func(Entry) error { return nil }); !errors.Is(err, ErrSymlink) {
			t.Fatalf("walk from a link: %v", err)
		}
	})
}

// TestRemoveAll: a tree with links to the outside is removed without
// touching what the links point at; a missing name is not an error; the
// bounds hold.
func TestRemoveAll(t *testing.T) {
	both(t, func(t *testing.T) {
		base, ws, d := layout(t)
		tree := filepath.Join(ws, "output", "submission.csv")
		for i := range 300 {
			p := filepath.Join(tree, fmt.Sprint("d", i%7), fmt.Sprint("f", i))
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, nil, 0o644))
		}
		must(t, os.Symlink(base, filepath.Join(tree, "up")))
		must(t, unix.Mkfifo(filepath.Join(tree, "fifo"), 0o644))
		if err := d.RemoveAll("output/submission.csv", Limits{MaxEntries: 100}); !errors.Is(err, ErrLimit) {
			t.Fatalf("bound: %v", err)
		}
		must(t, d.RemoveAll("output/submission.csv", Limits{}))
		if _, err := os.Lstat(tree); !os.IsNotExist(err) {
			t.Fatalf("still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(base, "secret.txt")); err != nil {
			t.Fatalf("followed a link: %v", err)
		}
		must(t, d.RemoveAll("output/missing", Limits{}))
		must(t, os.Symlink(base, filepath.Join(ws, "output", "l")))
		if err := d.RemoveAll("output/l/secret.txt", Limits{}); !errors.Is(err, ErrSymlink) {
			t.Fatalf("through a link: %v", err)
		}
	})
}

// TestNoMountCrossing: a path through a mount point below the root is
// refused (EXDEV) in both modes, as RESOLVE_NO_XDEV does.
func TestNoMountCrossing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: mounting a tmpfs needs root")
	}
	both(t, func(t *testing.T) {
		_, ws, d := layout(t)
		mp := filepath.Join(ws, "output", "mnt")
		must(t, os.Mkdir(mp, 0o755))
		if err := unix.Mount("safefs-test", mp, "tmpfs", 0, "size=64k"); err != nil {
			t.Skipf("SKIP: cannot mount a tmpfs: %v", err)
		}
		defer unix.Unmount(mp, unix.MNT_DETACH)
		must(t, os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644))
		if _, err := d.ReadFile("output/mnt/f", 10); !errors.Is(err, unix.EXDEV) {
			t.Fatalf("through a mount: %v", err)
		}
		var seen []string
		must(t, d.Walk("", Limits{}, func(e Entry) error { seen = append(seen, e.Rel); return nil }))
		if strings.Join(seen, ",") != "output" {
			t.Fatalf("walk entered a mount: %v", seen)
		}
	})
}
