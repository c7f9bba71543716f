package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a check found.
type Report struct {
	Mode      string
	Component string
	// Ran is how long the component ran.
	Ran time.Duration
	// ComponentFaults are the component's own (it exited with an error).
	ComponentFaults []string
	Channels        []ChannelReport
	Keys            []KeyReport
}

// ChannelReport is one channel the component published on or had to.
type ChannelReport struct {
	Name      string
	InCatalog bool
	// Messages published, and of the events among them how many came in
	// each shape.
	Messages, Envelope, Flat int
	// Invalid and Nonconforming count messages by reason.
	Invalid, Nonconforming map[string]int
	// NaiveTimestamps counts timestamps without a zone: valid (read as
	// UTC), and reported.
	NaiveTimestamps int
	// SubscribersSeen is the most subscribers the channel had at once,
	// the event logger's not counted.
	SubscribersSeen int
	Faults          []string

	wrongComponent string
}

// KeyReport is one key the component wrote or had to.
type KeyReport struct {
	Name      string
	InCatalog bool
	Written   bool
	// Policy is the catalog's TTL ("1h0m0s") or "persistent".
	Policy string
	// TTL is what Redis had left at the end; -1 for none.
	TTL time.Duration
	// Timestamp is the value's; zero when it has none.
	Timestamp time.Time
	Faults    []string
}

// Faults counts every fault of the report.
func (r *Report) Faults() int {
	n := len(r.ComponentFaults)
	for _, c := range r.Channels {
		n += len(c.Faults)
	}
	for _, k := range r.Keys {
		n += len(k.Faults)
	}
	return n
}

// OK says whether the component conforms.
func (r *Report) OK() bool { return r.Faults() == 0 }

func mark(faults []string) string {
	if len(faults) == 0 {
		return "ok"
	}
	return "FAIL"
}

func counts(m map[string]int) string {
	total := 0
	for _, n := range m {
		total += n
	}
	return fmt.Sprint(total)
}

// WriteText writes the report as a person reads it: a table of channels,
// a table of keys, then every fault.
func (r *Report) WriteText(w io.Writer) {
	who := r.Component
	if who == "" {
		who = "the component"
	}
	fmt.Fprintf(w, "Conformance of %s to the messaging standard (%s, ran %s)\n\n", who, r.Mode, r.Ran)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tIN CATALOG\tMESSAGES\tENVELOPE\tFLAT\tINVALID\tNONCONFORMING\tNAIVE TIMESTAMPS\tSUBSCRIBERS\tRESULT")
	for _, c := range r.Channels {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\n", c.Name, c.InCatalog, c.Messages, c.Envelope, c.Flat,
			counts(c.Invalid), counts(c.Nonconforming), c.NaiveTimestamps, c.SubscribersSeen, mark(c.Faults))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tIN CATALOG\tPOLICY\tTTL LEFT\tVALUE TIMESTAMP\tRESULT")
	for _, k := range r.Keys {
		ttl, ts := "none", "-"
		if k.TTL >= 0 {
			ttl = k.TTL.String()
		}
		if !k.Timestamp.IsZero() {
			ts = k.Timestamp.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", k.Name, k.InCatalog, k.Policy, ttl, ts, mark(k.Faults))
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	if r.OK() {
		fmt.Fprintln(w, "PASS: no fault")
		return
	}
	fmt.Fprintf(w, "FAIL: %d faults\n", r.Faults())
	for _, f := range r.ComponentFaults {
		fmt.Fprintf(w, "  component: %s\n", f)
	}
	for _, c := range r.Channels {
		for _, f := range c.Faults {
			fmt.Fprintf(w, "  channel %s: %s\n", c.Name, f)
		}
	}
	for _, k := range r.Keys {
		for _, f := range k.Faults {
			fmt.Fprintf(w, "  key %s: %s\n", k.Name, f)
		}
	}
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Class     string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func junitCaseOf(class, name string, faults []string, detail any) junitCase {
	c := junitCase{Class: class, Name: name}
	if b, err := json.Marshal(detail); err == nil {
		c.SystemOut = string(b)
	}
	if len(faults) > 0 {
		c.Failure = &junitFailure{Message: faults[0], Text: strings.Join(faults, "\n")}
	}
	return c
}

// WriteJUnit writes the report as JUnit XML, a test case per channel and
// per key (and one for the component's exit), for CI systems to show.
func (r *Report) WriteJUnit(w io.Writer) error {
	s := junitSuite{Name: "stratops-conformance", Time: fmt.Sprintf("%.3f", r.Ran.Seconds())}
	s.Cases = append(s.Cases, junitCaseOf("component", "exit", r.ComponentFaults, nil))
	for _, c := range r.Channels {
		s.Cases = append(s.Cases, junitCaseOf("channels", c.Name, c.Faults, c))
	}
	for _, k := range r.Keys {
		s.Cases = append(s.Cases, junitCaseOf("keys", k.Name, k.Faults, k))
	}
	s.Tests = len(s.Cases)
	for _, c := range s.Cases {
		if c.Failure != nil {
			s.Failures++
		}
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// jsonField reads one top-level field of a JSON object.
func jsonField(obj []byte, name string, dst any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return err
	}
	raw, ok := m[name]
	if !ok {
		return fmt.Errorf("no %s", name)
	}
	return json.Unmarshal(raw, dst)
}
