package models

import (
	"errors"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	type in struct {
		Name    *string     `field:"name"`
		Client  *uint       `field:"client_id,client"`
		Size    *int64      `field:"vol_size"`
		Locked  *bool       `field:"locked"`
		Volume  *uint       `field:"volume_id"`
		Network *uint       `field:"network_id,network"`
		Items   *[]MenuItem `field:"items"`
	}
	cases := []struct {
		body      string
		check     func(in) bool
		field     string // expected ValidationError field, "" for success
		malformed bool
	}{
		{`{"Name": "New Network", "Client": 2}`, func(v in) bool { return *v.Name == "New Network" && *v.Client == 2 }, "", false},
		{`{"vol_size": "42", "network": 1}`, func(v in) bool { return *v.Size == 42 && *v.Network == 1 }, "", false},
		{`{"VolumeID": 1}`, func(v in) bool { return *v.Volume == 1 }, "", false},
		{`{"volumeId": 3, "NETWORK_ID": 4}`, func(v in) bool { return *v.Volume == 3 && *v.Network == 4 }, "", false},
		{`{"locked": "on"}`, func(v in) bool { return *v.Locked }, "", false},
		{`{"locked": false}`, func(v in) bool { return !*v.Locked }, "", false},
		{`{"client": null}`, func(v in) bool { return *v.Client == 0 }, "", false},
		{`{"vol_size": "forty"}`, nil, "vol_size", false},
		{`{"vol_size": 4.5}`, nil, "vol_size", false},
		{`{"client": -1}`, nil, "client_id", false},
		{`{"name": 3}`, nil, "name", false},
		{`{"colour": "red"}`, nil, "colour", false},
		{`{"name": "a", "Name": "b"}`, nil, "name", false},
		{`{"client": 1, "client_id": 2}`, nil, "client_id", false},
		// A key given twice, whatever its spelling, is refused (a map would keep the last).
		{`{"vol_size": 1048577, "vol_size": 5}`, nil, "vol_size", false},
		{`{"vol_size": 5, "VOL_SIZE": 1}`, nil, "vol_size", false},
		{`{"Vol-Size": 5, "vol_size": 1}`, nil, "vol_size", false},
		{`{"name": null, "name": "x"}`, nil, "name", false},
		{`{"network": 1, "network_id": 1}`, nil, "network_id", false},
		{`{"items": [{"type": "local", "label": "a", "type": "group"}]}`, nil, "items", false},
		{`{"items": [{"type": "local", "label": "a", "Label": "b"}]}`, nil, "items", false},
		{`{"items": [{"type": "local", "label": "a", "colour": "red"}]}`, nil, "items", false},
		{`{"items": [{"type": "local", "label": "a"}, {"type": "local", "label": "b"}]}`, func(v in) bool { return len(*v.Items) == 2 }, "", false},
		{"{\"name\": \"\xff\"}", nil, "", true},
		{`{"a": 1} ]`, nil, "", true},
		{`{"a": 1`, nil, "", true},
		{`[1]`, nil, "", true},
		{`{"a": 1} {}`, nil, "", true},
		{``, nil, "", true},
	}
	for _, c := range cases {
		var v in
		err := DecodeJSON([]byte(c.body), &v)
		var ve *ValidationError
		var me *MalformedError
		switch {
		case c.malformed:
			if !errors.As(err, &me) {
				t.Errorf("%s: %v, want a malformed-body error", c.body, err)
			}
		case c.field != "":
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Errorf("%s: %v, want a validation error on %q", c.body, err, c.field)
			}
		default:
			if err != nil || !c.check(v) {
				t.Errorf("%s: %v %+v", c.body, err, v)
			}
		}
	}
}

func TestDecodeFormSharesRules(t *testing.T) {
	var v VolumeInput
	if err := DecodeForm(map[string][]string{"alias": {"V"}, "vol_size": {"42"}, "network": {"1"}, "csrf": {"x"}}, &v, "csrf"); err != nil {
		t.Fatal(err)
	}
	if *v.Alias != "V" || *v.SizeGiB != 42 || *v.NetworkID != 1 {
		t.Fatalf("%+v", v)
	}
	var ve *ValidationError
	if err := DecodeForm(map[string][]string{"vol_size": {"big"}}, &v); !errors.As(err, &ve) || ve.Field != "vol_size" {
		t.Fatalf("form wrong type: %v", err)
	}
	// A key given twice is refused, but for a checkbox after its hidden "false".
	v = VolumeInput{}
	if err := DecodeForm(map[string][]string{"vol_size": {"5", "1048577"}}, &v); !errors.As(err, &ve) || ve.Field != "vol_size" {
		t.Fatalf("form with vol_size twice: %v %+v", err, v)
	}
	var d DeviceInput
	if err := DecodeForm(map[string][]string{"locked": {"false", "true"}}, &d); err != nil || d.Locked == nil || !*d.Locked {
		t.Fatalf("checkbox after its hidden field: %v %+v", err, d)
	}
	d = DeviceInput{}
	if err := DecodeForm(map[string][]string{"locked": {"true", "false"}}, &d); !errors.As(err, &ve) || ve.Field != "locked" {
		t.Fatalf("locked twice: %v", err)
	}
	// Form values are bytes as sent: invalid UTF-8 is refused, not stored.
	if err := DecodeForm(map[string][]string{"alias": {"V\xff"}}, &v); !errors.As(err, &ve) || ve.Field != "alias" {
		t.Fatalf("invalid UTF-8 alias: %v", err)
	}
}

func TestNormalizeMAC(t *testing.T) {
	for in, want := range map[string]string{"52:54:00:AB:cd:01": "52:54:00:ab:cd:01", "52-54-00-ab-cd-01": "52:54:00:ab:cd:01", "5254.00ab.cd01": "52:54:00:ab:cd:01", "525400abcd01": "52:54:00:ab:cd:01"} {
		if got, err := NormalizeMAC(in); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "52:54:00", "zz:54:00:ab:cd:01", "52:54:00:ab:cd:01:02",
		// Separators anywhere, mixed or partial.
		"5:2:5:4:0:0:1:2:3:4:5:6", "52:54-00:ab:cd:01", "5254:00ab:cd01", "52.54.00.ab.cd.01", "52:54:00:abcd01", "52-5400-abcd-01", ":525400abcd01",
		"52:54:00:ab:cd:1", " 52 54 00 ab cd 01", "52:54:00:ab:cd:01\n00",
		// Not a card's address: all zeros, broadcast, multicast.
		"00:00:00:00:00:00", "000000000000", "ff:ff:ff:ff:ff:ff", "FF-FF-FF-FF-FF-FF", "01:00:5e:00:00:01", "33:33:00:00:00:01", "0300.0000.0001"} {
		if _, err := NormalizeMAC(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
