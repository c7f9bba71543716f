package messaging

import (
	"errors"
	"time"
)

// errBadTimestamp is what ParseTimestamp returns for a string it cannot read.
var errBadTimestamp = errors.New("messaging: not an RFC 3339 or ISO 8601 date and time")

// ParseTimestamp reads the timestamps components write:
//
//   - RFC 3339 with "Z" or an offset, any number of fractional digits:
//     "2024-05-12T14:00:00Z", "2024-05-12T14:00:00.123456+00:00" (Python's
//     datetime.now(timezone.utc).isoformat()), "2024-05-12T16:00:00+02:00";
//   - ISO 8601 without a zone, read as UTC: "2024-05-12T14:00:00.123456"
//     (Python's datetime.utcnow().isoformat()), "2024-05-12T14:00:00".
//
// The date and time may be separated by "T", "t" or one space (Python's
// isoformat(sep=" ")). The result is in UTC.
func ParseTimestamp(s string) (time.Time, error) {
	// YYYY-MM-DDThh:mm:ss is 19 bytes.
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, errBadTimestamp
	}
	if c := s[10]; c != 'T' && c != 't' && c != ' ' {
		return time.Time{}, errBadTimestamp
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, errBadTimestamp
	}
	rest := s[19:]
	nsec := 0
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		scale := 100_000_000
		for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
			// Digits past nanoseconds are read and dropped.
			nsec += int(rest[i]-'0') * scale
			scale /= 10
		}
		if i == 1 {
			return time.Time{}, errBadTimestamp
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case rest == "":
		// No zone: UTC, as Python's utcnow().isoformat() means it.
	case rest == "Z" || rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, okh := digits(rest[1:3])
		om, okm := digits(rest[4:6])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, errBadTimestamp
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, errBadTimestamp
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), nil
}

// FormatTimestamp writes t as RFC 3339 in UTC with as many fractional
// digits as it needs: what the package stamps on what it publishes.
func FormatTimestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
