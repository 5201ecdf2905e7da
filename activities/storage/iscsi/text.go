package iscsi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxTextLen bounds the key=value text accepted across continued Login or Text PDUs.
const maxTextLen = 64 << 10

// kv is an ordered list of text keys (RFC 7143 §6): order matters for replies.
type kv struct {
	keys []string
	vals map[string]string
}

func newKV() *kv { return &kv{vals: map[string]string{}} }

func (k *kv) set(key, val string) {
	if _, ok := k.vals[key]; !ok {
		k.keys = append(k.keys, key)
	}
	k.vals[key] = val
}

func (k *kv) get(key string) (string, bool) { v, ok := k.vals[key]; return v, ok }

func (k *kv) encode() []byte {
	var b []byte
	for _, key := range k.keys {
		b = append(b, key...)
		b = append(b, '=')
		b = append(b, k.vals[key]...)
		b = append(b, 0)
	}
	return b
}

var errText = errors.New("iscsi: malformed text")

// parseText splits NUL-separated key=value pairs. Duplicate keys and keys without
// '=' are errors (RFC 7143 §6.1); a trailing fragment without NUL is accepted.
func parseText(b []byte) (*kv, error) {
	out := newKV()
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		pair := string(b[:i])
		if i < len(b) {
			b = b[i+1:]
		} else {
			b = nil
		}
		if pair == "" {
			continue
		}
		eq := strings.IndexByte(pair, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("%w: %q has no value", errText, pair)
		}
		key, val := pair[:eq], pair[eq+1:]
		if len(key) > 63 || len(val) > 8192 {
			return nil, fmt.Errorf("%w: key or value too long", errText)
		}
		if _, dup := out.vals[key]; dup {
			return nil, fmt.Errorf("%w: %s given twice", errText, key)
		}
		out.set(key, val)
	}
	return out, nil
}

// params are the operational parameters of a session (RFC 7143 §13).
type params struct {
	headerDigest, dataDigest bool
	initialR2T               bool
	immediateData            bool
	maxRecvDSL               uint32 // the initiator's: bounds each PDU we send
	maxBurst                 uint32
	firstBurst               uint32
	defaultTime2Wait         uint32
	defaultTime2Retain       uint32
	maxOutstandingR2T        uint32
	errorRecoveryLevel       uint32
}

func defaultParams() params {
	return params{
		initialR2T: true, immediateData: true, maxRecvDSL: 8192, maxBurst: 262144,
		firstBurst: 65536, defaultTime2Wait: 2, defaultTime2Retain: 20, maxOutstandingR2T: 1,
	}
}

// negotiator answers the operational keys an initiator offers, within the
// server's limits. It is pure so it can be fuzzed.
type negotiator struct {
	limits     Config
	p          params
	declaredMR bool // we have sent our MaxRecvDataSegmentLength
}

func parseNumber(v string) (uint64, bool) {
	if strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X") {
		n, err := strconv.ParseUint(v[2:], 16, 64)
		return n, err == nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// chooseDigest picks CRC32C or None from the initiator's list, preferring None
// unless the server is configured to prefer digests.
func chooseDigest(offer string, prefer bool) (string, bool) {
	var none, crc bool
	for _, o := range strings.Split(offer, ",") {
		switch strings.TrimSpace(o) {
		case "None":
			none = true
		case "CRC32C":
			crc = true
		}
	}
	switch {
	case crc && (prefer || !none):
		return "CRC32C", true
	case none:
		return "None", true
	}
	return "Reject", false
}

// operational answers one operational key; it returns the reply value, or ""
// when the key must not be answered (declarative keys we only note). An error
// means the login must fail.
func (n *negotiator) operational(key, val string) (string, error) {
	num := func(min, max uint64) (uint64, error) {
		v, ok := parseNumber(val)
		if !ok || v < min || v > max {
			return 0, fmt.Errorf("%w: %s=%q out of range", errText, key, val)
		}
		return v, nil
	}
	boolean := func() (bool, error) {
		switch val {
		case "Yes":
			return true, nil
		case "No":
			return false, nil
		}
		return false, fmt.Errorf("%w: %s=%q is not Yes/No", errText, key, val)
	}
	yesNo := func(b bool) string {
		if b {
			return "Yes"
		}
		return "No"
	}
	switch key {
	case "HeaderDigest", "DataDigest":
		v, ok := chooseDigest(val, n.limits.PreferDigests)
		if !ok {
			return "Reject", nil
		}
		if key == "HeaderDigest" {
			n.p.headerDigest = v == "CRC32C"
		} else {
			n.p.dataDigest = v == "CRC32C"
		}
		return v, nil
	case "MaxConnections":
		if _, err := num(1, 65535); err != nil {
			return "", err
		}
		return "1", nil
	case "InitialR2T":
		b, err := boolean()
		if err != nil {
			return "", err
		}
		n.p.initialR2T = b || n.limits.InitialR2T
		return yesNo(n.p.initialR2T), nil
	case "ImmediateData":
		b, err := boolean()
		if err != nil {
			return "", err
		}
		n.p.immediateData = b
		return yesNo(b), nil
	case "MaxRecvDataSegmentLength":
		v, err := num(512, 1<<24-1)
		if err != nil {
			return "", err
		}
		n.p.maxRecvDSL = uint32(v)
		return "", nil
	case "MaxBurstLength":
		v, err := num(512, 1<<24-1)
		if err != nil {
			return "", err
		}
		n.p.maxBurst = uint32(min(v, uint64(n.limits.MaxBurstLength)))
		if n.p.firstBurst > n.p.maxBurst {
			n.p.firstBurst = n.p.maxBurst
		}
		return strconv.FormatUint(uint64(n.p.maxBurst), 10), nil
	case "FirstBurstLength":
		v, err := num(512, 1<<24-1)
		if err != nil {
			return "", err
		}
		n.p.firstBurst = uint32(min(v, uint64(n.limits.FirstBurstLength)))
		return strconv.FormatUint(uint64(n.p.firstBurst), 10), nil
	case "DefaultTime2Wait":
		v, err := num(0, 3600)
		if err != nil {
			return "", err
		}
		n.p.defaultTime2Wait = uint32(max(v, 2))
		return strconv.FormatUint(uint64(n.p.defaultTime2Wait), 10), nil
	case "DefaultTime2Retain":
		v, err := num(0, 3600)
		if err != nil {
			return "", err
		}
		n.p.defaultTime2Retain = uint32(min(v, 20))
		return strconv.FormatUint(uint64(n.p.defaultTime2Retain), 10), nil
	case "MaxOutstandingR2T":
		if _, err := num(1, 65535); err != nil {
			return "", err
		}
		n.p.maxOutstandingR2T = 1
		return "1", nil
	case "DataPDUInOrder", "DataSequenceInOrder":
		if _, err := boolean(); err != nil {
			return "", err
		}
		return "Yes", nil
	case "ErrorRecoveryLevel":
		if _, err := num(0, 2); err != nil {
			return "", err
		}
		n.p.errorRecoveryLevel = 0
		return "0", nil
	case "IFMarker", "OFMarker":
		return "No", nil
	case "IFMarkInt", "OFMarkInt":
		return "Irrelevant", nil
	}
	return "NotUnderstood", nil
}
