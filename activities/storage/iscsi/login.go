package iscsi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Login status classes and details (RFC 7143 §11.13.5).
const (
	loginSuccess          = 0x0000
	loginAuthFailed       = 0x0201
	loginForbidden        = 0x0202
	loginNotFound         = 0x0203
	loginTargetRemoved    = 0x0204
	loginBadVersion       = 0x0205
	loginMissingParam     = 0x0207
	loginCantAddConn      = 0x0208
	loginSessionType      = 0x0209
	loginNoSession        = 0x020a
	loginInvalidRequest   = 0x020b
	loginInitiatorError   = 0x0200
	loginTargetError      = 0x0300
	loginOutOfResources   = 0x0302
	stageSecurity         = 0
	stageOperational      = 1
	stageFullFeature      = 3
	chapIdle              = 0
	chapWaitAlgorithm     = 1
	chapWaitResponse      = 2
	chapDone              = 3
	maxLoginPDUs          = 64
	chapChallengeBytes    = 16
	loginErrFmt           = "login: %s"
	sessionTypeDiscovery  = "Discovery"
	sessionTypeNormal     = "Normal"
	keyAuthMethod         = "AuthMethod"
	authNone              = "None"
	authCHAP              = "CHAP"
	keyMaxRecvDSL         = "MaxRecvDataSegmentLength"
	keyTargetPortalGroup  = "TargetPortalGroupTag"
	keyInitiatorName      = "InitiatorName"
	keyTargetName         = "TargetName"
	keySessionType        = "SessionType"
	initiatorNameMaxBytes = 223
)

// loginError ends a login with a status.
type loginError struct {
	status uint16
	msg    string
}

func (e *loginError) Error() string { return fmt.Sprintf("login status %#04x: %s", e.status, e.msg) }

func lerr(status uint16, format string, args ...any) error {
	return &loginError{status: status, msg: fmt.Sprintf(format, args...)}
}

// loginState is the state of one connection's login phase.
type loginState struct {
	isid        [6]byte
	tsih        uint16
	cid         uint16
	itt         uint32
	cmdSN       uint32
	stage       int
	first       bool
	initiator   string
	sessionType string
	tgt         *target
	authDone    bool
	chapState   int
	chapID      byte
	chapChal    []byte
	neg         negotiator
	sentPGT     bool
	text        []byte // accumulated continued text
}

// login runs the login phase; on success the connection has a session.
func (c *conn) login() error {
	ls := &loginState{first: true, neg: negotiator{limits: c.srv.cfg, p: defaultParams()}}
	p := &c.in
	for range maxLoginPDUs {
		if err := c.pr.readHeader(p); err != nil {
			return err
		}
		if p.opcode() != opLoginReq {
			return fmt.Errorf("login: opcode %#x before full feature phase", p.opcode())
		}
		if p.dataLen() > maxTextLen {
			return fmt.Errorf("login: text of %d bytes", p.dataLen())
		}
		if err := c.pr.readData(p, nil); err != nil {
			return err
		}
		done, err := c.loginStep(ls, p)
		if err != nil {
			var le *loginError
			if errors.As(err, &le) {
				if ls.tgt != nil {
					ls.tgt.stats.loginFailures.Add(1)
				}
				c.log.Info("iscsi login refused", "initiator", ls.initiator, "target", targetName(ls.tgt),
					"status", fmt.Sprintf("%#04x", le.status), "reason", le.msg)
				c.sendLoginResp(ls, p, 0, nil, le.status)
				c.flush()
				// Give the initiator a moment to read the status before the close.
				time.Sleep(10 * time.Millisecond)
			}
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
	return errors.New("login: too many login PDUs")
}

func targetName(t *target) string {
	if t == nil {
		return ""
	}
	return t.cfg.IQN
}

// loginStep handles one Login Request; done reports the move to full feature phase.
func (c *conn) loginStep(ls *loginState, p *pdu) (bool, error) {
	flags := p.flags()
	transit, cont := flags&0x80 != 0, flags&0x40 != 0
	csg, nsg := int(flags>>2)&3, int(flags&3)
	var isid [6]byte
	copy(isid[:], p.bhs[8:14])
	tsih := uint16(p.bhs[14])<<8 | uint16(p.bhs[15])
	if ls.first {
		if p.bhs[3] > 0 { // Version-min above 0: we only speak version 0.
			ls.isid, ls.tsih, ls.itt = isid, tsih, p.itt()
			return false, lerr(loginBadVersion, "version-min %d", p.bhs[3])
		}
		ls.isid, ls.tsih, ls.cid, ls.itt = isid, tsih, uint16(p.bhs[20])<<8|uint16(p.bhs[21]), p.itt()
		ls.cmdSN = p.u32(24)
		ls.stage = csg
		c.statSN = p.u32(28)
	} else if isid != ls.isid || tsih != ls.tsih {
		return false, lerr(loginInitiatorError, "ISID or TSIH changed during login")
	}
	ls.itt = p.itt()
	if transit && cont {
		return false, lerr(loginInitiatorError, "T and C both set")
	}
	if csg != ls.stage || csg == 2 || csg == stageFullFeature {
		return false, lerr(loginInitiatorError, "stage %d while in stage %d", csg, ls.stage)
	}
	if transit && (nsg <= csg || nsg == 2) {
		return false, lerr(loginInitiatorError, "bad next stage %d from %d", nsg, csg)
	}
	if len(ls.text)+len(p.data) > maxTextLen {
		return false, lerr(loginInitiatorError, "login text too long")
	}
	ls.text = append(ls.text, p.data...)
	if cont {
		// Partial text: acknowledge with an empty response and wait for the rest.
		c.sendLoginResp(ls, p, 0, nil, loginSuccess)
		return false, nil
	}
	keys, err := parseText(ls.text)
	ls.text = ls.text[:0]
	if err != nil {
		return false, lerr(loginInitiatorError, "%v", err)
	}
	reply := newKV()
	if ls.first {
		if err := c.loginFirst(ls, keys, reply); err != nil {
			return false, err
		}
		ls.first = false
	}
	for _, k := range keys.keys {
		v := keys.vals[k]
		switch k {
		case keyInitiatorName, keySessionType, keyTargetName, "InitiatorAlias":
			continue
		case keyAuthMethod:
			if err := c.chooseAuth(ls, v, reply); err != nil {
				return false, err
			}
		case "CHAP_A", "CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C":
			if k == "CHAP_A" {
				if err := c.chapAlgorithm(ls, v, reply); err != nil {
					return false, err
				}
			}
			if k == "CHAP_R" {
				if err := c.chapResponse(ls, keys, reply); err != nil {
					return false, err
				}
			}
		case "TargetAlias", "TargetAddress", keyTargetPortalGroup:
			return false, lerr(loginInitiatorError, "initiator sent %s", k)
		default:
			val, err := ls.neg.operational(k, v)
			if err != nil {
				return false, lerr(loginInitiatorError, "%v", err)
			}
			if val != "" {
				reply.set(k, val)
			}
		}
	}
	needAuth := ls.tgt != nil && ls.tgt.cfg.CHAP != nil
	if ls.stage == stageSecurity && !needAuth && ls.chapState == chapIdle {
		ls.authDone = true
	}
	if ls.stage != stageSecurity && needAuth && !ls.authDone {
		return false, lerr(loginAuthFailed, "authentication required")
	}
	if ls.stage == stageSecurity && ls.chapState != chapIdle && ls.chapState != chapDone {
		transit = false // CHAP exchange still running
	}
	if ls.stage == stageSecurity && needAuth && !ls.authDone && transit {
		if ls.chapState == chapIdle {
			return false, lerr(loginAuthFailed, "no authentication method agreed")
		}
		transit = false
	}
	if ls.stage == stageOperational || (transit && nsg == stageOperational) {
		if !ls.neg.declaredMR && (ls.stage == stageOperational) {
			reply.set(keyMaxRecvDSL, strconv.FormatUint(uint64(c.srv.cfg.MaxRecvDataSegmentLength), 10))
			ls.neg.declaredMR = true
		}
	}
	if !transit {
		c.sendLoginResp(ls, p, 0, reply.encode(), loginSuccess)
		return false, nil
	}
	if nsg != stageFullFeature {
		c.sendLoginResp(ls, p, 0x80|byte(nsg), reply.encode(), loginSuccess)
		ls.stage = nsg
		return false, nil
	}
	if err := c.startSession(ls); err != nil {
		return false, err
	}
	c.sendLoginResp(ls, p, 0x80|stageFullFeature, reply.encode(), loginSuccess)
	return true, nil
}

// loginFirst checks the keys that must come in the first Login Request.
func (c *conn) loginFirst(ls *loginState, keys *kv, reply *kv) error {
	name, ok := keys.get(keyInitiatorName)
	if !ok || name == "" {
		return lerr(loginMissingParam, "no InitiatorName")
	}
	if len(name) > initiatorNameMaxBytes {
		return lerr(loginInitiatorError, "InitiatorName too long")
	}
	ls.initiator = name
	st, ok := keys.get(keySessionType)
	if !ok {
		st = sessionTypeNormal
	}
	switch st {
	case sessionTypeDiscovery:
		ls.sessionType = st
		return nil
	case sessionTypeNormal:
		ls.sessionType = st
	default:
		return lerr(loginSessionType, "session type %q", st)
	}
	tn, ok := keys.get(keyTargetName)
	if !ok || tn == "" {
		return lerr(loginMissingParam, "no TargetName")
	}
	t := c.srv.lookupTarget(tn)
	if t == nil {
		return lerr(loginNotFound, "target %q not found", tn)
	}
	ls.tgt = t
	if !t.allows(name) {
		return lerr(loginForbidden, "initiator not in ACL")
	}
	reply.set(keyTargetPortalGroup, strconv.Itoa(int(c.srv.cfg.PortalGroupTag)))
	if t.cfg.Alias != "" {
		reply.set("TargetAlias", t.cfg.Alias)
	}
	ls.sentPGT = true
	return nil
}

func (c *conn) chooseAuth(ls *loginState, offer string, reply *kv) error {
	if ls.stage != stageSecurity {
		return lerr(loginInitiatorError, "AuthMethod outside security stage")
	}
	methods := strings.Split(offer, ",")
	need := ls.tgt != nil && ls.tgt.cfg.CHAP != nil
	switch {
	case need && slices.Contains(methods, authCHAP):
		reply.set(keyAuthMethod, authCHAP)
		ls.chapState = chapWaitAlgorithm
	case need:
		return lerr(loginAuthFailed, "target requires CHAP, initiator offered %q", offer)
	case slices.Contains(methods, authNone):
		reply.set(keyAuthMethod, authNone)
		ls.authDone = true
	default:
		return lerr(loginAuthFailed, "no common authentication method in %q", offer)
	}
	return nil
}

func (c *conn) chapAlgorithm(ls *loginState, offer string, reply *kv) error {
	if ls.chapState != chapWaitAlgorithm {
		return lerr(loginInitiatorError, "unexpected CHAP_A")
	}
	if !slices.Contains(strings.Split(offer, ","), "5") {
		return lerr(loginAuthFailed, "CHAP algorithm %q not supported (need MD5)", offer)
	}
	var b [chapChallengeBytes + 1]byte
	if _, err := rand.Read(b[:]); err != nil {
		return lerr(loginTargetError, "random: %v", err)
	}
	ls.chapID = b[0]
	ls.chapChal = b[1:]
	reply.set("CHAP_A", "5")
	reply.set("CHAP_I", strconv.Itoa(int(ls.chapID)))
	reply.set("CHAP_C", "0x"+hex.EncodeToString(ls.chapChal))
	ls.chapState = chapWaitResponse
	return nil
}

func chapDigest(id byte, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// decodeCHAPBinary decodes CHAP values in 0x (hex) or 0b (base64) form.
func decodeCHAPBinary(v string) ([]byte, error) {
	switch {
	case strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X"):
		s := v[2:]
		if len(s)%2 == 1 {
			s = "0" + s
		}
		return hex.DecodeString(s)
	case strings.HasPrefix(v, "0b") || strings.HasPrefix(v, "0B"):
		return base64.StdEncoding.DecodeString(v[2:])
	}
	return nil, fmt.Errorf("bad binary value %q", v)
}

func (c *conn) chapResponse(ls *loginState, keys *kv, reply *kv) error {
	if ls.chapState != chapWaitResponse {
		return lerr(loginInitiatorError, "unexpected CHAP_R")
	}
	cfg := ls.tgt.cfg.CHAP
	n, _ := keys.get("CHAP_N")
	r, _ := keys.get("CHAP_R")
	resp, err := decodeCHAPBinary(r)
	if err != nil {
		return lerr(loginAuthFailed, "CHAP_R: %v", err)
	}
	want := chapDigest(ls.chapID, cfg.Secret, ls.chapChal)
	userOK := subtle.ConstantTimeCompare([]byte(n), []byte(cfg.User)) == 1
	if !userOK || subtle.ConstantTimeCompare(resp, want) != 1 {
		return lerr(loginAuthFailed, "CHAP response does not match")
	}
	if iv, ok := keys.get("CHAP_I"); ok {
		cv, ok := keys.get("CHAP_C")
		if !ok || cfg.MutualSecret == "" {
			return lerr(loginAuthFailed, "mutual CHAP not configured")
		}
		id, err := strconv.ParseUint(iv, 0, 8)
		if err != nil {
			return lerr(loginAuthFailed, "CHAP_I: %v", err)
		}
		chal, err := decodeCHAPBinary(cv)
		if err != nil || len(chal) == 0 || len(chal) > 1024 {
			return lerr(loginAuthFailed, "CHAP_C invalid")
		}
		if subtle.ConstantTimeCompare(chal, ls.chapChal) == 1 {
			return lerr(loginAuthFailed, "CHAP challenge reflected")
		}
		reply.set("CHAP_N", cfg.MutualUser)
		reply.set("CHAP_R", "0x"+hex.EncodeToString(chapDigest(byte(id), cfg.MutualSecret, chal)))
	}
	ls.chapState = chapDone
	ls.authDone = true
	return nil
}

// sendLoginResp queues a Login Response. flags carries T and NSG.
func (c *conn) sendLoginResp(ls *loginState, req *pdu, flags byte, data []byte, status uint16) {
	var r pdu
	r.bhs[0] = opLoginResp
	csg := byte(ls.stage)
	if status != loginSuccess {
		flags = 0
	}
	r.bhs[1] = flags | csg<<2
	if flags&0x80 == 0 {
		r.bhs[1] &^= 3
	}
	r.bhs[2], r.bhs[3] = 0, 0
	copy(r.bhs[8:14], ls.isid[:])
	tsih := ls.tsih
	if c.sess != nil {
		tsih = c.sess.tsih
	}
	r.bhs[14], r.bhs[15] = byte(tsih>>8), byte(tsih)
	r.put32(16, ls.itt)
	r.put32(24, c.statSN)
	c.statSN++
	r.put32(28, ls.cmdSN)
	r.put32(32, ls.cmdSN+c.srv.cfg.QueueDepth-1)
	r.bhs[36], r.bhs[37] = byte(status>>8), byte(status)
	if status != loginSuccess {
		data = nil
	}
	r.setDataLen(len(data))
	// Digests start with the first PDU after the login phase (RFC 7143 §13.1),
	// and the final Login Response is still part of it.
	hd, dd := c.p.headerDigest, c.p.dataDigest
	c.p.headerDigest, c.p.dataDigest = false, false
	c.queue(&r, data)
	c.p.headerDigest, c.p.dataDigest = hd, dd
}
