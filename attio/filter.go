package attio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Operator compares an event field with a filter value.
type Operator string

// The operators Attio accepts in webhook subscription filters.
const (
	OpEquals    Operator = "equals"
	OpNotEquals Operator = "not_equals"
)

// Condition is one comparison of a filter: the event value at Field (a dot
// path such as "id.list_id" or "actor.type") compared with Value.
type Condition struct {
	Field    string   `json:"field"`
	Operator Operator `json:"operator"`
	Value    string   `json:"value"`
}

// Equals is the condition "the event's field equals value".
func Equals(field, value string) Condition {
	return Condition{Field: field, Operator: OpEquals, Value: value}
}

// NotEquals is the condition "the event's field does not equal value".
func NotEquals(field, value string) Condition {
	return Condition{Field: field, Operator: OpNotEquals, Value: value}
}

// Filter narrows a subscription to the events that match. Exactly one of And
// and Or holds conditions; a nil *Filter matches every event and encodes as
// JSON null, which is how Attio spells "no filter".
type Filter struct {
	And []Condition
	Or  []Condition
}

// And is a filter that matches when every condition matches.
func And(conds ...Condition) *Filter { return &Filter{And: conds} }

// Or is a filter that matches when at least one condition matches.
func Or(conds ...Condition) *Filter { return &Filter{Or: conds} }

// ErrInvalidFilter is wrapped by every filter validation error.
var ErrInvalidFilter = errors.New("attio: invalid filter")

// Validate reports the first reason Attio would refuse f. A nil filter is valid.
func (f *Filter) Validate() error {
	if f == nil {
		return nil
	}
	switch {
	case len(f.And) > 0 && len(f.Or) > 0:
		return fmt.Errorf("%w: use either $and or $or, not both", ErrInvalidFilter)
	case len(f.And) == 0 && len(f.Or) == 0:
		return fmt.Errorf("%w: $and or $or needs at least one condition", ErrInvalidFilter)
	}
	key, conds := f.list()
	for i, c := range conds {
		if err := c.validate(); err != nil {
			return fmt.Errorf("%w: %s[%d]: %s", ErrInvalidFilter, key, i, err)
		}
	}
	return nil
}

func (c Condition) validate() error {
	if c.Field == "" {
		return errors.New("field is empty")
	}
	for _, seg := range strings.Split(c.Field, ".") {
		if seg == "" {
			return fmt.Errorf("field %q has an empty path segment", c.Field)
		}
	}
	if c.Operator != OpEquals && c.Operator != OpNotEquals {
		return fmt.Errorf("operator %q is not %q or %q", c.Operator, OpEquals, OpNotEquals)
	}
	return nil
}

func (f *Filter) list() (string, []Condition) {
	if len(f.Or) > 0 {
		return "$or", f.Or
	}
	return "$and", f.And
}

// MarshalJSON encodes f as {"$and":[…]} or {"$or":[…]}. It has a value
// receiver so that a Filter value encodes the same as a *Filter; a nil
// *Filter encodes as null (encoding/json handles the nil pointer).
func (f Filter) MarshalJSON() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	key, conds := f.list()
	return json.Marshal(map[string][]Condition{key: conds})
}

// UnmarshalJSON decodes {"$and":[…]} or {"$or":[…]} strictly: unknown keys,
// unknown condition fields and invalid conditions are errors.
func (f *Filter) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidFilter, err)
	}
	if raw == nil { // JSON null: leave the zero filter; callers use *Filter for "none".
		return nil
	}
	*f = Filter{}
	for key, val := range raw {
		var conds []Condition
		dec := json.NewDecoder(bytes.NewReader(val))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&conds); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidFilter, key, err)
		}
		switch key {
		case "$and":
			f.And = conds
		case "$or":
			f.Or = conds
		default:
			return fmt.Errorf("%w: unknown key %q (want $and or $or)", ErrInvalidFilter, key)
		}
	}
	return f.Validate()
}

// Match reports whether the decoded event (as produced by encoding/json into
// map[string]any) passes the filter. A nil filter matches everything. A field
// that is absent, or holds an object or array, equals no value, so
// not_equals matches it.
func (f *Filter) Match(event map[string]any) bool {
	if f == nil {
		return true
	}
	key, conds := f.list()
	for _, c := range conds {
		ok := c.match(event)
		if key == "$or" && ok {
			return true
		}
		if key == "$and" && !ok {
			return false
		}
	}
	return key == "$and"
}

// MatchJSON is Match on a raw JSON event object.
func (f *Filter) MatchJSON(event []byte) (bool, error) {
	var m map[string]any
	if err := json.Unmarshal(event, &m); err != nil {
		return false, errorf("filter match: %w", err)
	}
	return f.Match(m), nil
}

func (c Condition) match(event map[string]any) bool {
	got, ok := lookup(event, c.Field)
	equal := ok && got == c.Value
	if c.Operator == OpNotEquals {
		return !equal
	}
	return equal
}

// lookup follows a dot path into a decoded JSON object and renders the scalar
// it finds as a string (numbers and booleans in their JSON spelling).
func lookup(event map[string]any, path string) (string, bool) {
	var cur any = event
	for _, seg := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = obj[seg]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, true
	case float64, bool, json.Number:
		b, _ := json.Marshal(v)
		return string(b), true
	default: // nil, objects and arrays equal no value
		return "", false
	}
}

// String renders c in the flag form ParseCondition reads: "field=value" or
// "field!=value".
func (c Condition) String() string {
	op := "="
	if c.Operator == OpNotEquals {
		op = "!="
	}
	return c.Field + op + c.Value
}

// String renders f readably, e.g. `id.list_id=L1 AND actor.type!=system`;
// a nil filter is "(none)".
func (f *Filter) String() string {
	if f == nil {
		return "(none)"
	}
	key, conds := f.list()
	sep := " AND "
	if key == "$or" {
		sep = " OR "
	}
	parts := make([]string, len(conds))
	for i, c := range conds {
		parts[i] = c.String()
	}
	return strings.Join(parts, sep)
}

// ParseCondition reads the flag form of a condition: "id.list_id=abc" is
// equals and "actor.type!=system" is not_equals. The operator is the first
// "=" (or "!=") in the text, so the value may itself contain "=". Spaces
// around the field are trimmed; the value is kept as given, and may be
// empty.
func ParseCondition(s string) (Condition, error) {
	i := strings.IndexByte(s, '=')
	if i < 0 {
		return Condition{}, fmt.Errorf("%w: condition %q has no = or != (want field=value or field!=value)", ErrInvalidFilter, s)
	}
	c := Condition{Operator: OpEquals, Value: s[i+1:]}
	field := s[:i]
	if strings.HasSuffix(field, "!") {
		c.Operator = OpNotEquals
		field = strings.TrimSuffix(field, "!")
	}
	c.Field = strings.TrimSpace(field)
	if err := c.validate(); err != nil {
		return Condition{}, fmt.Errorf("%w: condition %q: %s", ErrInvalidFilter, s, err)
	}
	return c, nil
}

// ParseFilter builds a filter from flag-form conditions. mode is "and" (or
// "$and", or empty) for all-must-match and "or" (or "$or") for any-may-match.
// No conditions means no filter: it returns nil, nil.
func ParseFilter(mode string, conds []string) (*Filter, error) {
	var or bool
	switch strings.ToLower(strings.TrimSpace(mode)) {
	case "", "and", "$and":
	case "or", "$or":
		or = true
	default:
		return nil, fmt.Errorf("%w: mode %q is not and or or", ErrInvalidFilter, mode)
	}
	if len(conds) == 0 {
		return nil, nil
	}
	parsed := make([]Condition, 0, len(conds))
	for _, s := range conds {
		c, err := ParseCondition(s)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, c)
	}
	if or {
		return Or(parsed...), nil
	}
	return And(parsed...), nil
}
