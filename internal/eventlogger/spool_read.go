package eventlogger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"time"
)

// Reading the spool back, and its on-disk format: a segment is a run of
// frames, each a length, a CRC-32C and a record's body.

// ReadFrom returns up to n records from seq on, read from the segment
// files (what the in-memory cache no longer holds).
func (s *Spool) ReadFrom(seq uint64, n int) ([]spoolRecord, error) {
	s.mu.Lock()
	if err := s.w.Flush(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	segs := append([]spoolSegment(nil), s.segs...)
	s.mu.Unlock()
	return s.reader.read(segs, seq, n)
}

// spoolReader reads on from where it stopped, so that reading a spool in
// order costs one pass over it.
type spoolReader struct {
	f    *os.File
	r    *bufio.Reader
	path string
	next uint64
}

func (rd *spoolReader) read(segs []spoolSegment, seq uint64, n int) ([]spoolRecord, error) {
	var out []spoolRecord
	for len(out) < n {
		if rd.f == nil || rd.next > seq {
			if rd.f != nil {
				_ = rd.f.Close()
				rd.f = nil
			}
			i := sort.Search(len(segs), func(i int) bool { return segs[i].last >= seq })
			if i == len(segs) || segs[i].last < segs[i].first {
				return out, nil // nothing from seq on
			}
			f, err := os.Open(segs[i].path)
			if err != nil {
				return out, err
			}
			rd.f, rd.r, rd.path, rd.next = f, bufio.NewReaderSize(f, 256<<10), segs[i].path, segs[i].first
		}
		// Only frames the snapshot says are whole are read: an append
		// may be on its way to the file.
		var rec spoolRecord
		err := io.EOF
		for _, sg := range segs {
			if sg.path == rd.path && rd.next <= sg.last {
				rec, err = readFrame(rd.r)
			}
		}
		if errors.Is(err, io.EOF) {
			// The end of what this segment holds: on to the next one when
			// seq is there; else stay, as appends to it come after.
			later := false
			for _, sg := range segs {
				if sg.path != rd.path && sg.first <= seq && sg.last >= seq {
					later = true
				}
			}
			if !later {
				return out, nil
			}
			_ = rd.f.Close()
			rd.f = nil
			continue
		}
		if err != nil {
			return out, err
		}
		rd.next = rec.Seq + 1
		if rec.Seq < seq {
			continue
		}
		out = append(out, rec)
		seq = rec.Seq + 1
	}
	return out, nil
}

func scanSegment(path string, fn func(spoolRecord)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	r := bufio.NewReaderSize(f, 256<<10)
	var good int64
	for {
		rec, err := readFrame(r)
		if err != nil {
			// EOF, a torn frame or a bad checksum: the good part ends here.
			return good, nil
		}
		good += int64(spoolFrameHeader + recordBodyLen(&rec))
		fn(rec)
	}
}

var errBadFrame = errors.New("eventlogger: spool: bad frame")

func readFrame(r *bufio.Reader) (spoolRecord, error) {
	var hdr [spoolFrameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return spoolRecord{}, errBadFrame
		}
		return spoolRecord{}, err
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n > 1<<28 {
		return spoolRecord{}, errBadFrame
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return spoolRecord{}, errBadFrame
	}
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return spoolRecord{}, errBadFrame
	}
	return decodeRecordBody(body)
}

// A record's body: seq (8), logged-at in Unix nanoseconds (8), flags (1:
// bit 0 is HTTP), then the ID, the channel and the payload, each with its
// length (4).
func recordBodyLen(r *spoolRecord) int {
	return 17 + 12 + len(r.ID) + len(r.Channel) + len(r.Payload)
}

func appendRecordBody(b []byte, r *spoolRecord) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.LoggedAt.UnixNano()))
	flags := byte(0)
	if r.HTTP {
		flags |= 1
	}
	b = append(b, flags)
	for _, f := range [][]byte{[]byte(r.ID), []byte(r.Channel), r.Payload} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func decodeRecordBody(b []byte) (spoolRecord, error) {
	if len(b) < 17 {
		return spoolRecord{}, errBadFrame
	}
	r := spoolRecord{Seq: binary.LittleEndian.Uint64(b[0:8]), LoggedAt: time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:16]))).UTC(), HTTP: b[16]&1 != 0}
	b = b[17:]
	var fields [3][]byte
	for i := range fields {
		if len(b) < 4 {
			return spoolRecord{}, errBadFrame
		}
		n := binary.LittleEndian.Uint32(b[:4])
		b = b[4:]
		if uint32(len(b)) < n {
			return spoolRecord{}, errBadFrame
		}
		fields[i], b = b[:n], b[n:]
	}
	r.ID, r.Channel, r.Payload = string(fields[0]), string(fields[1]), fields[2]
	return r, nil
}
