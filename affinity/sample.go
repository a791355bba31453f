package affinity

import "encoding/json"

// Sample bodies come from the examples of Affinity's Help Center ("Webhook
// Responses") and V1 reference, with the personal data replaced by fake
// data (example.com addresses, documentation IP addresses). Reminders have
// no published example: theirs follows the V1 Reminder resource.
// smart_interaction_value.updated has no published body at all: its sample
// is made up, a person's "last email" smart field changing, shaped after
// the V1 interaction dates (a date and the people involved); code must not
// rely on its keys. Updated
// variants look like created ones; deleted variants omit what Affinity
// omits (person.deleted has no organization_ids, opportunity.deleted no
// person_ids or organization_ids).
const (
	sampleOrganization = `{"id":64779194,"name":"Affinity","domain":"affinity.co","domains":["affinity.co"],"crunchbase_uuid":null,"global":true}`

	sampleOrganizationMerge = `{"changer":{"id":38706,"type":1,"first_name":"John","last_name":"Doe","primary_email":"john.doe@example.com","emails":[]},` +
		`"removed_company":{"id":64779194,"name":"Affinity","domain":"affinity.co","domains":["affinity.co"],"crunchbase_uuid":null,"global":true},` +
		`"company":{"id":64779195,"name":"Affinity 2","domain":"affinity.co","domains":["affinity.co"],"crunchbase_uuid":null,"global":false},` +
		`"merged_at":"2021-11-15 13:45:16 -0800"}`

	samplePerson        = `{"id":38706,"type":0,"first_name":"John","last_name":"Doe","primary_email":"john.doe@example.com","emails":["john.doe@example.com"],"organization_ids":[64779194]}`
	samplePersonDeleted = `{"id":38706,"type":0,"first_name":"John","last_name":"Doe","primary_email":"john.doe@example.com","emails":["john.doe@example.com"]}`

	sampleOpportunity        = `{"id":7460748,"name":"Amazon - Project A","person_ids":[38706],"organization_ids":[]}`
	sampleOpportunityDeleted = `{"id":7460748,"name":"Amazon - Project A"}`

	sampleList = `{"id":450,"ip_address":"203.0.113.17"}`

	sampleListEntry = `{"id":388,"list_id":26,"creator_id":38603,"entity_id":70796737,"entity_type":0,"created_at":"2021-09-08T09:55:50.321-07:00",` +
		`"entity":{"id":70796737,"type":0,"first_name":"John","last_name":"Doe","primary_email":"john.doe@example.com","emails":["john.doe@example.com"]}}`

	sampleField = `{"id":59,"name":"Deals Amount","list_id":11,"value_type":3,"allows_multiple":false,"track_changes":false,"dropdown_options":[],"ip_address":"203.0.113.17"}`

	sampleFieldValue = `{"id":250616,"field_id":337,"list_entry_id":null,"entity_type":38706,"value_type":0,"entity_id":91407761,` +
		`"value":{"city":"San Francisco","state":"California","country":"United States","continent":null,"street_address":null},` +
		`"field":{"id":318500,"name":"Location","list_id":null,"value_type":5,"allows_multiple":false,"track_changes":false,"dropdown_options":[]}}`

	sampleNote = `{"id":22984,"creator_id":860197,"person_ids":[38706,89734],"is_meeting":false,"organization_ids":[],"opportunity_ids":[],"parent_id":null,` +
		`"content":"Had a lunch meeting with Jane and John today.","created_at":"2021-11-11 07:21:10 -0800","ip_address":"203.0.113.17"}`

	sampleFile = `{"id":43212,"name":"JohnDoeFriends.csv","size":993,"person_id":10,"organization_id":null,"opportunity_id":null,"created_at":"2021-11-11 07:54:36 -0800","uploader_id":64056952}`

	sampleReminder = `{"id":15326,"type":1,"created_at":"2023-06-21T16:00:28.315-07:00","completed_at":null,"content":"Check in with Jane about the Series A timeline",` +
		`"due_date":"2023-07-21T09:00:00.000-07:00","reset_type":0,"reminder_days":30,"status":1,` +
		`"creator":{"id":38603,"type":1,"first_name":"Alex","last_name":"Rivera","primary_email":"alex.rivera@example.com","emails":["alex.rivera@example.com"]},` +
		`"owner":{"id":38603,"type":1,"first_name":"Alex","last_name":"Rivera","primary_email":"alex.rivera@example.com","emails":["alex.rivera@example.com"]},` +
		`"completer":null,` +
		`"person":{"id":70796737,"type":0,"first_name":"Jane","last_name":"Doe","primary_email":"jane.doe@example.com","emails":["jane.doe@example.com"]},` +
		`"organization":null,"opportunity":null}`

	sampleSmartInteractionValue = `{"entity_id":38706,"entity_type":0,"field_id":"last-email",` +
		`"value":{"date":"2023-06-21T16:00:28.315-07:00","person_ids":[38706,38603]},"updated_at":"2023-06-21T16:00:29.102-07:00"}`

	sampleProbe = `{"test":true}`
)

var sampleBodies = map[EventType]string{
	OrganizationCreated: sampleOrganization,
	OrganizationUpdated: sampleOrganization,
	OrganizationDeleted: sampleOrganization,
	OrganizationMerged:  sampleOrganizationMerge,
	PersonCreated:       samplePerson,
	PersonUpdated:       samplePerson,
	PersonDeleted:       samplePersonDeleted,
	OpportunityCreated:  sampleOpportunity,
	OpportunityUpdated:  sampleOpportunity,
	OpportunityDeleted:  sampleOpportunityDeleted,
	ListCreated:         sampleList,
	ListUpdated:         sampleList,
	ListDeleted:         sampleList,
	ListEntryCreated:    sampleListEntry,
	ListEntryDeleted:    sampleListEntry,
	FieldCreated:        sampleField,
	FieldUpdated:        sampleField,
	FieldDeleted:        sampleField,
	FieldValueCreated:   sampleFieldValue,
	FieldValueUpdated:   sampleFieldValue,
	FieldValueDeleted:   sampleFieldValue,
	NoteCreated:         sampleNote,
	NoteUpdated:         sampleNote,
	NoteDeleted:         sampleNote,
	FileCreated:         sampleFile,
	FileDeleted:         sampleFile,
	ReminderCreated:     sampleReminder,
	ReminderUpdated:     sampleReminder,
	ReminderDeleted:     sampleReminder,

	SmartInteractionValueUpdated: sampleSmartInteractionValue,
	SampleWebhook:                sampleProbe,
}

// SampleBody returns a realistic body for t (compact JSON, a fresh copy the
// caller may change): one of every known type and sample.webhook (for
// smart_interaction_value.updated, whose body Affinity does not document, a
// plausible one). It is nil for other types. `crmhook send`, the simulator and tests use it; wrap it
// with NewEnvelope to get a delivery.
func SampleBody(t EventType) json.RawMessage {
	s, ok := sampleBodies[t]
	if !ok {
		return nil
	}
	return json.RawMessage(s)
}
