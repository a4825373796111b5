package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxPolicyBytes bounds what one load reads, so a runaway file cannot exhaust
// memory. 100k rows take about 8 MiB.
const maxPolicyBytes = 64 << 20

// isPolicyFile reports whether a directory entry is part of the policy (and so
// of its hash). Hidden names are skipped: in a Kubernetes ConfigMap volume the
// visible names are symlinks through the atomically swapped "..data" link.
func isPolicyFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	return name == modelFile || name == hierarchyFile || name == quorumFile || name == routesFile || strings.HasSuffix(name, policyExt)
}

// readPolicy reads the policy files of dir and their content hash.
func readPolicy(dir string) (map[string][]byte, string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("read policy directory: %w", err)
	}
	files := map[string][]byte{}
	total := 0
	for _, e := range ents {
		if !isPolicyFile(e.Name()) {
			continue
		}
		b, err := readLimited(filepath.Join(dir, e.Name()), maxPolicyBytes-total)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a dangling link during a ConfigMap swap; the next poll sees the new set
			}
			return nil, "", err
		}
		total += len(b)
		files[e.Name()] = b
	}
	return files, hashFiles(files), nil
}

func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", filepath.Base(path))
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("policy files exceed %d MiB", maxPolicyBytes>>20)
	}
	return b, nil
}

// hashFiles is the policy's content hash: SHA-256 over each file's name, length
// and content in name order, in hex. It names the policy in every decision.
func hashFiles(files map[string][]byte) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		var buf bytes.Buffer
		buf.WriteString(n)
		buf.WriteByte(0)
		buf.WriteString(strconv.Itoa(len(files[n])))
		buf.WriteByte(0)
		h.Write(buf.Bytes())
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}
