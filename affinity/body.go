package affinity

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Typed bodies, one per event family. Field names follow Affinity's V1
// resources and the Help Center's "Webhook Responses". Keys a deleted
// variant omits are nil-able (slices, pointers), so "absent" (nil) stays
// distinguishable from "empty" ([] gives a non-nil empty slice); they are
// written back with omitzero, so an absent key stays absent. Keys Affinity
// sends as null for some records (crunchbase_uuid, list_id, parent_id, …)
// are pointers too. Anything not listed here is still in Event.Body.

// PersonType says whether a person is outside the Affinity instance or one
// of its users.
type PersonType int

// Person types.
const (
	PersonExternal PersonType = 0
	PersonInternal PersonType = 1
)

// EntityType is the kind of record a list holds or a list entry points to.
type EntityType int

// Entity types of lists and list entries.
const (
	EntityPerson       EntityType = 0
	EntityOrganization EntityType = 1
	EntityOpportunity  EntityType = 8
)

// FieldValueType is the type of the values of a field.
type FieldValueType int

// Field value types of the V1 API.
const (
	ValuePerson         FieldValueType = 0 // a person id
	ValueOrganization   FieldValueType = 1 // an organization id
	ValueDropdown       FieldValueType = 2 // the option's text
	ValueNumber         FieldValueType = 3
	ValueDate           FieldValueType = 4
	ValueLocation       FieldValueType = 5
	ValueText           FieldValueType = 6
	ValueRankedDropdown FieldValueType = 7 // {id, text, rank, color}
)

// Person is the body of person.created, person.updated and person.deleted,
// and the shape of people inside other bodies (changer, reminder owner, …).
type Person struct {
	ID           int64      `json:"id"`
	Type         PersonType `json:"type"`
	FirstName    string     `json:"first_name"`
	LastName     string     `json:"last_name"`
	PrimaryEmail string     `json:"primary_email"`
	Emails       []string   `json:"emails"`
	// OrganizationIDs is nil when the key is absent, as in person.deleted,
	// and empty (not nil) when Affinity sends [].
	OrganizationIDs []int64 `json:"organization_ids,omitzero"`
}

// Organization is the body of organization.created, .updated and .deleted
// (the same shape for all three), and the companies of organization.merged.
type Organization struct {
	ID             int64    `json:"id"`
	Name           string   `json:"name"`
	Domain         *string  `json:"domain"`
	Domains        []string `json:"domains"`
	CrunchbaseUUID *string  `json:"crunchbase_uuid"`
	// Global is true for organizations Affinity knows from its own data,
	// false for ones only this instance created.
	Global bool `json:"global"`
}

// OrganizationMerge is the body of organization.merged: Company absorbed
// RemovedCompany. (The event type constant is OrganizationMerged.)
type OrganizationMerge struct {
	Changer        *Person       `json:"changer"`
	RemovedCompany *Organization `json:"removed_company"`
	Company        *Organization `json:"company"`
	MergedAt       Time          `json:"merged_at"`
}

// Opportunity is the body of opportunity.created, .updated and .deleted.
type Opportunity struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// PersonIDs and OrganizationIDs are nil when absent, as in
	// opportunity.deleted, and empty (not nil) when Affinity sends [].
	PersonIDs       []int64 `json:"person_ids,omitzero"`
	OrganizationIDs []int64 `json:"organization_ids,omitzero"`
}

// List is the body of list.created, .updated and .deleted. The Help
// Center's example carries only id and ip_address; the other keys are those
// of the V1 List resource, set when Affinity sends them.
type List struct {
	ID        int64       `json:"id"`
	Type      *EntityType `json:"type,omitzero"`
	Name      string      `json:"name,omitzero"`
	Public    *bool       `json:"public,omitzero"`
	OwnerID   *int64      `json:"owner_id,omitzero"`
	CreatorID *int64      `json:"creator_id,omitzero"`
	ListSize  *int64      `json:"list_size,omitzero"`
	IPAddress string      `json:"ip_address,omitzero"`
}

// ListEntry is the body of list_entry.created and list_entry.deleted.
// Entity keeps the entity's JSON as received; decoding also sets the one of
// Person, Organization or Opportunity that EntityType names (all three stay
// nil for an entity type this package does not know, or a null entity).
type ListEntry struct {
	ID         int64           `json:"id"`
	ListID     int64           `json:"list_id"`
	CreatorID  *int64          `json:"creator_id"`
	EntityID   int64           `json:"entity_id"`
	EntityType EntityType      `json:"entity_type"`
	CreatedAt  Time            `json:"created_at"`
	Entity     json.RawMessage `json:"entity,omitzero"`

	Person       *Person       `json:"-"`
	Organization *Organization `json:"-"`
	Opportunity  *Opportunity  `json:"-"`
}

// UnmarshalJSON decodes the entry, then its entity by EntityType.
func (e *ListEntry) UnmarshalJSON(data []byte) error {
	if jsonKind(data) == 'n' {
		return nil // null leaves the value alone, as encoding/json does
	}
	type plain ListEntry // no methods: no recursion
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*e = ListEntry(p)
	if jsonKind(e.Entity) != '{' {
		return nil
	}
	var err error
	switch e.EntityType {
	case EntityPerson:
		e.Person = new(Person)
		err = json.Unmarshal(e.Entity, e.Person)
	case EntityOrganization:
		e.Organization = new(Organization)
		err = json.Unmarshal(e.Entity, e.Organization)
	case EntityOpportunity:
		e.Opportunity = new(Opportunity)
		err = json.Unmarshal(e.Entity, e.Opportunity)
	}
	if err != nil {
		return fmt.Errorf("entity: %w", err)
	}
	return nil
}

// DropdownOption is one option of a dropdown field, and the value of a
// ranked-dropdown field value.
type DropdownOption struct {
	ID    int64  `json:"id"`
	Text  string `json:"text"`
	Rank  int    `json:"rank"`
	Color int    `json:"color"`
}

// Field is the body of field.created, .updated and .deleted, and the field
// inside a field value's body.
type Field struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// ListID is nil for global fields.
	ListID           *int64           `json:"list_id"`
	ValueType        FieldValueType   `json:"value_type"`
	AllowsMultiple   bool             `json:"allows_multiple"`
	TrackChanges     bool             `json:"track_changes"`
	DropdownOptions  []DropdownOption `json:"dropdown_options"`
	EnrichmentSource *string          `json:"enrichment_source,omitzero"`
	IPAddress        string           `json:"ip_address,omitzero"`
}

// Location is the value of a location field.
type Location struct {
	StreetAddress *string `json:"street_address"`
	City          *string `json:"city"`
	State         *string `json:"state"`
	Country       *string `json:"country"`
	Continent     *string `json:"continent"`
}

// FieldValue is the body of field_value.created, .updated and .deleted.
// Value keeps its JSON as received (its shape depends on the field's value
// type; it is null for Crunchbase fields); TypedValue or DecodeValue decode
// it.
type FieldValue struct {
	ID          int64           `json:"id"`
	FieldID     int64           `json:"field_id"`
	ListEntryID *int64          `json:"list_entry_id"`
	EntityType  int             `json:"entity_type"`
	ValueType   FieldValueType  `json:"value_type"`
	EntityID    int64           `json:"entity_id"`
	Value       json.RawMessage `json:"value"`
	Field       *Field          `json:"field,omitzero"`
}

// DecodeValue decodes Value into dst, like json.Unmarshal.
func (v *FieldValue) DecodeValue(dst any) error {
	if len(v.Value) == 0 {
		return json.Unmarshal([]byte("null"), dst)
	}
	return json.Unmarshal(v.Value, dst)
}

// EffectiveValueType is the value type that describes Value: the field's,
// when the body carries the field, else the field value's own. (The Help
// Center's example sends value_type 0 next to a location value whose field
// says 5, location: the field is the one to trust.)
func (v *FieldValue) EffectiveValueType() FieldValueType {
	if v.Field != nil {
		return v.Field.ValueType
	}
	return v.ValueType
}

// TypedValue decodes Value by EffectiveValueType: int64 for person and
// organization ids, string for dropdowns and text, float64 for numbers,
// Time for dates, *Location, *DropdownOption for ranked dropdowns, and
// json.RawMessage for value types this package does not know. A null value
// gives nil. A field that allows multiple values may send an array; it is
// decoded element by element into a []any of the same types.
func (v *FieldValue) TypedValue() (any, error) {
	if k := jsonKind(v.Value); k == 0 || k == 'n' {
		return nil, nil
	}
	vt := v.EffectiveValueType()
	if jsonKind(v.Value) == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(items))
		for _, item := range items {
			x, err := decodeFieldValue(vt, item)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	}
	return decodeFieldValue(vt, v.Value)
}

func decodeFieldValue(vt FieldValueType, raw json.RawMessage) (any, error) {
	if jsonKind(raw) == 'n' {
		return nil, nil
	}
	var err error
	switch vt {
	case ValuePerson, ValueOrganization:
		var id int64
		err = json.Unmarshal(raw, &id)
		return id, err
	case ValueDropdown, ValueText:
		var s string
		err = json.Unmarshal(raw, &s)
		return s, err
	case ValueNumber:
		var f float64
		err = json.Unmarshal(raw, &f)
		return f, err
	case ValueDate:
		var t Time
		err = json.Unmarshal(raw, &t)
		return t, err
	case ValueLocation:
		loc := new(Location)
		err = json.Unmarshal(raw, loc)
		return loc, err
	case ValueRankedDropdown:
		opt := new(DropdownOption)
		err = json.Unmarshal(raw, opt)
		return opt, err
	default:
		return bytes.Clone(raw), nil
	}
}

// Note is the body of note.created, .updated and .deleted.
type Note struct {
	ID              int64   `json:"id"`
	CreatorID       int64   `json:"creator_id"`
	PersonIDs       []int64 `json:"person_ids,omitzero"`
	IsMeeting       bool    `json:"is_meeting"`
	OrganizationIDs []int64 `json:"organization_ids,omitzero"`
	OpportunityIDs  []int64 `json:"opportunity_ids,omitzero"`
	// ParentID is set on replies: the note replied to.
	ParentID  *int64 `json:"parent_id"`
	Content   string `json:"content"`
	CreatedAt Time   `json:"created_at"`
	UpdatedAt Time   `json:"updated_at,omitzero"`
	IPAddress string `json:"ip_address,omitzero"`
}

// File is the body of file.created and file.deleted (an entity file). One
// of PersonID, OrganizationID and OpportunityID is set.
type File struct {
	ID             int64  `json:"id"`
	Name           string `json:"name"`
	Size           int64  `json:"size"`
	PersonID       *int64 `json:"person_id"`
	OrganizationID *int64 `json:"organization_id"`
	OpportunityID  *int64 `json:"opportunity_id"`
	CreatedAt      Time   `json:"created_at"`
	UploaderID     int64  `json:"uploader_id"`
}

// ReminderType says whether a reminder fires once or recurs.
type ReminderType int

// Reminder types.
const (
	ReminderOneTime   ReminderType = 0
	ReminderRecurring ReminderType = 1
)

// ReminderStatus is where a reminder stands.
type ReminderStatus int

// Reminder statuses.
const (
	ReminderCompleted ReminderStatus = 0
	ReminderActive    ReminderStatus = 1
	ReminderOverdue   ReminderStatus = 2
)

// Reminder is the body of reminder.created, .updated and .deleted: the V1
// Reminder resource. People and records it is about are nil when null.
type Reminder struct {
	ID          int64        `json:"id"`
	Type        ReminderType `json:"type"`
	CreatedAt   Time         `json:"created_at"`
	CompletedAt Time         `json:"completed_at"`
	Content     string       `json:"content"`
	DueDate     Time         `json:"due_date"`
	// ResetType and ReminderDays apply to recurring reminders; nil when null.
	ResetType    *int           `json:"reset_type"`
	ReminderDays *int           `json:"reminder_days"`
	Status       ReminderStatus `json:"status"`
	Creator      *Person        `json:"creator"`
	Owner        *Person        `json:"owner"`
	Completer    *Person        `json:"completer"`
	Person       *Person        `json:"person"`
	Organization *Organization  `json:"organization"`
	Opportunity  *Opportunity   `json:"opportunity"`
}

// SampleWebhookBody is the body of the sample.webhook probe: {"test": true}.
type SampleWebhookBody struct {
	Test bool `json:"test"`
}

// jsonKind is the first byte of a JSON value, after white space: '{', '[',
// '"', 'n' (null), 't', 'f', or a digit/minus for numbers; 0 when empty.
func jsonKind(v []byte) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	return v[0]
}
