package local

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// TestFeedbackMatchesRealHistory rebuilds feedback texts of the real
// MLE-Dojo history from its result records and compares byte for byte.
func TestFeedbackMatchesRealHistory(t *testing.T) {
	b, err := os.ReadFile("../../../shared/mledojo/trajectories/env_history.json")
	if os.IsNotExist(err) {
		t.Skip("MLE-Dojo samples not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Actions []struct {
			Action   string          `json:"action"`
			Result   json.RawMessage `json:"result"`
			Feedback struct {
				Base struct{ Feedback string } `json:"base"`
			} `json:"feedback"`
		} `json:"actions"`
		BestRaw float64 `json:"best_raw_score"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	var bestRaw, bestPos any
	checked := 0
	for i, a := range h.Actions {
		res := toOmap(t, a.Result)
		var got string
		switch a.Action {
		case "request_info":
			// pandas' to_dict keeps integer row keys in the repr.
			if d := sub(res, "data"); d != nil {
				if ss := sub(d, "sample_submission"); ss != nil {
					for j := range ss {
						col := ss[j].V.(omap)
						vals := make(intKeyMap, len(col))
						for k := range col {
							vals[k] = col[k].V
						}
						ss[j].V = vals
					}
				}
			}
			got = infoFeedback(res)
		case "execute_code":
			if s := sub(res, "submission"); s != nil && str(s, "status") == "SUCCESS" {
				raw, _ := s.get("raw_score")
				avg, _ := sub(s, "position_score").get("avg_score")
				if bestRaw == nil || raw.(float64) > bestRaw.(float64) {
					bestRaw, bestPos = raw, avg
				}
			}
			got = executionFeedback(res, bestRaw, bestPos)
		default:
			continue
		}
		if got != a.Feedback.Base.Feedback {
			t.Errorf("step %d (%s) feedback differs:\n got %q\nwant %q", i+1, a.Action, got, a.Feedback.Base.Feedback)
		}
		checked++
	}
	if checked != 10 {
		t.Fatalf("checked %d steps, want 10", checked)
	}
}

// toOmap decodes JSON keeping key order; integral numbers become int.
func toOmap(t *testing.T, raw json.RawMessage) omap {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		t.Fatal(err)
	}
	return v.(omap)
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case json.Delim:
		if x == '{' {
			m := omap{}
			for dec.More() {
				k, _ := dec.Token()
				v, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				m = append(m, kv{k.(string), v})
			}
			dec.Token()
			return m, nil
		}
		var l []any
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		dec.Token()
		return l, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return int(n), nil
		}
		f, _ := x.Float64()
		return f, nil
	}
	return tok, nil
}

func TestPyRepr(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{1e-5, "1e-05"}, {1e16, "1e+16"}, {123456.0, "123456.0"}, {0.1, "0.1"}, {-2.5e-7, "-2.5e-07"}, {0.0, "0.0"},
		{"it's", `"it's"`}, {`a'b"c`, `'a\'b"c'`}, {"tab\there\n", `'tab\there\n'`}, {"é✓", "'é✓'"},
		{omap{{"a", nil}, {"b", true}, {"c", []any{}}}, "{'a': None, 'b': True, 'c': []}"},
		{intKeyMap{1, "x"}, "{0: 1, 1: 'x'}"},
	} {
		if got := pyRepr(c.v); got != c.want {
			t.Errorf("pyRepr(%#v) = %s, want %s", c.v, got, c.want)
		}
	}
}
