// Command ociimage assembles the release image from binaries already
// cross-compiled, with no container engine and no registry: for each
// platform one layer (the binaries, a passwd and group naming the nonroot
// user 65532, the CA certificates, an empty /tmp), an OCI image config for
// that architecture, and one image index for all of them, written as an
// OCI image layout in a tar archive (podman load, skopeo copy
// oci-archive:...).
//
//	go run ./hack/ociimage -version 0.1.0 -revision <commit> -bins dist/bin -out dist/stratops-0.1.0.oci.tar
//
// -bins holds one directory per platform, linux-<arch>, with the binaries.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's binaries, in its root; the first is the entrypoint.
var binaries = []string{"manager", "eventlogger", "sampleengine"}

func main() {
	version := flag.String("version", "", "the release's version")
	revision := flag.String("revision", "", "the commit it is built from")
	source := flag.String("source", "", "where its source is published (org.opencontainers.image.source); empty: left out")
	bins := flag.String("bins", "", "directory of linux-<arch> directories of binaries")
	out := flag.String("out", "", "the OCI archive to write")
	caFile := flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "the CA certificates to put in the image")
	flag.Parse()
	if err := run(*version, *revision, *source, *bins, *out, *caFile); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func run(version, revision, source, bins, out, caFile string) error {
	if version == "" || bins == "" || out == "" {
		return errors.New("-version, -bins and -out are required")
	}
	cas, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("the CA certificates: %w", err)
	}
	dirs, err := filepath.Glob(filepath.Join(bins, "linux-*"))
	if err != nil || len(dirs) == 0 {
		return fmt.Errorf("no linux-<arch> directory in %s", bins)
	}
	sort.Strings(dirs)
	labels := map[string]string{
		"org.opencontainers.image.title":    "stratops",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": revision,
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	if source != "" {
		labels["org.opencontainers.image.source"] = source
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, dir := range dirs {
		arch := strings.TrimPrefix(filepath.Base(dir), "linux-")
		img, err := platformImage(dir, arch, cas, labels)
		if err != nil {
			return fmt.Errorf("linux/%s: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
		}})
	}
	tmp, err := os.MkdirTemp("", "ociimage-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": version,
		"io.containerd.image.name":          "stratops:" + version,
	})); err != nil {
		return err
	}
	return tarDir(tmp, out)
}

// platformImage is the image of one architecture.
func platformImage(dir, arch string, cas []byte, labels map[string]string) (v1.Image, error) {
	var files []file
	for _, b := range binaries {
		data, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: b, mode: 0o755, data: data})
	}
	files = append(files,
		file{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		file{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		file{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: cas},
		file{name: "tmp/", mode: 0o1777, dir: true},
	)
	layerTar, err := tarOf(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	cfg.Config.Entrypoint = []string{"/" + binaries[0]}
	cfg.Config.User = "65532:65532"
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = labels
	return mutate.ConfigFile(img, cfg)
}

type file struct {
	name string
	mode int64
	data []byte
	dir  bool
}

// tarOf is a tar of files, owned by root, with a fixed time: the same
// binaries give the same layer.
func tarOf(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	made := map[string]bool{}
	epoch := time.Unix(0, 0)
	for _, f := range files {
		// Parent directories first.
		parts := strings.Split(strings.TrimSuffix(f.name, "/"), "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !made[d] {
				made[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
					return nil, err
				}
			}
		}
		if f.dir {
			made[f.name] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: f.name, Mode: f.mode, ModTime: epoch}); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the files under dir to a tar at out, as paths relative to
// dir.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = time.Unix(0, 0), 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
