package eventlogger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrSpoolFull is returned when the spool has no room for a batch.
var ErrSpoolFull = errors.New("eventlogger: spool is full")

// spoolRecord is one accepted event as the spool keeps it: enough to
// decode it again (the catalog decodes a payload the same way each time,
// given the time it was received) and to know it in the history (ID).
type spoolRecord struct {
	Seq uint64
	// HTTP: posted to the API (only this replica has it), rather than
	// received on a channel (which every replica hears).
	HTTP     bool
	ID       string
	Channel  string
	LoggedAt time.Time
	Payload  []byte
}

// Spool is the logger's disk buffer: every accepted event is appended to
// it before it is acknowledged, and stays until the history has it.
//
// It is a directory of segment files, "seg-<first seq>.log", each a run
// of frames: length (4 bytes), CRC-32C of the body (4 bytes), body. A
// frame cut short by a crash, or whose checksum fails, ends the segment;
// what follows it is not read. The file "acked" holds the highest
// sequence number the history is known to have; segments wholly at or
// below it are deleted. Appends are made durable by Sync, which fsyncs
// once for every appender waiting (group commit).
type Spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	segs    []spoolSegment // oldest first; the last is open for appends
	size    int64          // bytes of every segment
	next    uint64         // the next record's sequence number
	acked   uint64
	scratch []byte
	// mark holds acked: 8 bytes and their CRC, rewritten in place (one
	// small write, no new file) at each Ack.
	mark *os.File

	syncMu sync.Mutex
	synced atomic.Uint64 // every record up to this one is on disk

	reader spoolReader // the writer's, when the cache has spilled
}

type spoolSegment struct {
	path        string
	first, last uint64 // last is first-1 while empty
	size        int64
}

const (
	spoolFrameHeader = 8
	spoolAckedFile   = "acked"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// OpenSpool opens (or makes) the spool in dir, holding at most maxBytes,
// and returns the records it holds that the history may not have, oldest
// first: those to write again.
func OpenSpool(dir string, maxBytes int64) (*Spool, []spoolRecord, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("eventlogger: spool: %w", err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, segBytes: max(min(maxBytes/8, 16<<20), 512), next: 1}
	if b, err := os.ReadFile(filepath.Join(dir, spoolAckedFile)); err == nil && len(b) >= 12 &&
		crc32.Checksum(b[:8], crcTable) == binary.LittleEndian.Uint32(b[8:12]) {
		s.acked = binary.LittleEndian.Uint64(b[:8])
	}
	mark, err := os.OpenFile(filepath.Join(dir, spoolAckedFile), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("eventlogger: spool: %w", err)
	}
	s.mark = mark
	names, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(names, func(i, j int) bool { return segFirst(names[i]) < segFirst(names[j]) })
	var replay []spoolRecord
	for _, name := range names {
		seg := spoolSegment{path: name, first: segFirst(name)}
		seg.last = seg.first - 1
		good, err := scanSegment(name, func(r spoolRecord) {
			seg.last = r.Seq
			if r.Seq > s.acked {
				replay = append(replay, r)
			}
		})
		if err != nil {
			return nil, nil, err
		}
		// A torn tail (a crash mid-write) is cut off, so that appends
		// after it would be read.
		if fi, err := os.Stat(name); err == nil && fi.Size() > good {
			if err := os.Truncate(name, good); err != nil {
				return nil, nil, fmt.Errorf("eventlogger: spool: cutting the torn tail of %s: %w", name, err)
			}
		}
		seg.size = good
		if seg.last >= seg.first && seg.last <= s.acked {
			_ = os.Remove(name)
			continue
		}
		s.segs = append(s.segs, seg)
		s.size += good
		s.next = max(s.next, seg.last+1)
	}
	s.next = max(s.next, s.acked+1)
	s.synced.Store(s.next - 1)
	if err := s.openSegment(); err != nil {
		return nil, nil, err
	}
	return s, replay, nil
}

func segFirst(path string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "seg-"), ".log"), 10, 64)
	return n
}

func (s *Spool) segPath(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("seg-%020d.log", first))
}

// openSegment starts a new segment for appends (under mu, or before use).
func (s *Spool) openSegment() error {
	path := s.segPath(s.next)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("eventlogger: spool: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	if fi.Size() > 0 { // the segment of a record that was acked and cut: start clean
		if err := f.Truncate(0); err != nil {
			_ = f.Close()
			return err
		}
	}
	if n := len(s.segs); n > 0 && s.segs[n-1].path == path {
		s.size -= s.segs[n-1].size
		s.segs = s.segs[:n-1]
	}
	s.f, s.w = f, bufio.NewWriterSize(f, 256<<10)
	s.segs = append(s.segs, spoolSegment{path: path, first: s.next, last: s.next - 1})
	return nil
}

// Append writes records, giving each its sequence number; it returns the
// last one. Nothing is written when they do not all fit: ErrSpoolFull.
func (s *Spool) Append(recs []spoolRecord) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	need := int64(0)
	for i := range recs {
		need += int64(spoolFrameHeader + recordBodyLen(&recs[i]))
	}
	if s.size+need > s.maxBytes {
		return 0, ErrSpoolFull
	}
	for i := range recs {
		recs[i].Seq = s.next
		s.scratch = appendRecordBody(s.scratch[:0], &recs[i])
		var hdr [spoolFrameHeader]byte
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(s.scratch)))
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(s.scratch, crcTable))
		if _, err := s.w.Write(hdr[:]); err != nil {
			return 0, err
		}
		if _, err := s.w.Write(s.scratch); err != nil {
			return 0, err
		}
		n := int64(spoolFrameHeader + len(s.scratch))
		seg := &s.segs[len(s.segs)-1]
		seg.size += n
		seg.last = s.next
		s.size += n
		s.next++
	}
	last := s.next - 1
	if s.segs[len(s.segs)-1].size >= s.segBytes {
		// Rotate: the full segment is made durable and closed here, so a
		// Sync that raced with this finds its records on disk.
		if err := s.w.Flush(); err != nil {
			return 0, err
		}
		if err := s.f.Sync(); err != nil {
			return 0, err
		}
		_ = s.f.Close()
		s.synced.Store(max(s.synced.Load(), last))
		if err := s.openSegment(); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// Sync returns once every record up to seq is on disk, or in the history
// (acked: then no fsync is needed). Callers waiting together share one
// fsync.
func (s *Spool) Sync(seq uint64) error {
	if s.synced.Load() >= seq {
		return nil
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced.Load() >= seq {
		return nil
	}
	s.mu.Lock()
	if s.acked >= seq {
		// The history has every record up to seq: none is needed
		// from disk.
		s.mu.Unlock()
		return nil
	}
	if err := s.w.Flush(); err != nil {
		s.mu.Unlock()
		return err
	}
	f, upto := s.f, s.next-1
	s.mu.Unlock()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		// Closed: a rotation synced it first.
		return fmt.Errorf("eventlogger: spool: fsync: %w", err)
	}
	if upto > s.synced.Load() {
		s.synced.Store(upto)
	}
	return nil
}

// Ack says the history has every record up to seq: segments wholly below
// it are deleted, and the mark is kept for a restart. The mark is not
// fsynced: a crash that loses it replays records the history has, which
// the writer finds there and does not write twice.
func (s *Spool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.acked {
		return nil
	}
	s.acked = seq
	keep := s.segs[:0]
	for i, seg := range s.segs {
		if i < len(s.segs)-1 && seg.last <= seq {
			_ = os.Remove(seg.path)
			s.size -= seg.size
			continue
		}
		keep = append(keep, seg)
	}
	s.segs = keep
	// The open segment holds only acked records: start a fresh one so
	// that its room comes back.
	if open := s.segs[len(s.segs)-1]; open.last >= open.first && open.last <= seq && open.size >= s.segBytes/4 {
		if err := s.w.Flush(); err == nil {
			_ = s.f.Close()
			_ = os.Remove(open.path)
			s.size -= open.size
			s.segs = s.segs[:len(s.segs)-1]
			if err := s.openSegment(); err != nil {
				return err
			}
		}
	}
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], seq)
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b[:8], crcTable))
	_, err := s.mark.WriteAt(b[:], 0)
	return err
}

// Bytes is how much of its room the spool uses; Unacked how many records
// the history may not have yet.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// MaxBytes is the spool's room.
func (s *Spool) MaxBytes() int64 { return s.maxBytes }

// Unacked is how many records the history may not have yet.
func (s *Spool) Unacked() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next - 1 - s.acked
}

// Close flushes and closes the open segment.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	_ = s.mark.Close()
	s.f = nil
	return err
}
