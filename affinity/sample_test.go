package affinity

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestSampleBodies(t *testing.T) {
	emails := regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+`)
	for _, et := range append(EventTypes(), SampleWebhook) {
		body := SampleBody(et)
		if body == nil {
			t.Errorf("%s: no sample", et)
			continue
		}
		if !json.Valid(body) || jsonKind(body) != '{' {
			t.Errorf("%s: not a JSON object", et)
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, body); err != nil || compact.String() != string(body) {
			t.Errorf("%s: not compact", et)
		}
		for _, addr := range emails.FindAllString(string(body), -1) {
			if !strings.HasSuffix(addr, "@example.com") {
				t.Errorf("%s: %s is not an example.com address", et, addr)
			}
		}
		if strings.Contains(string(body), "ip_address") && !strings.Contains(string(body), `"203.0.113.`) {
			t.Errorf("%s: ip_address outside the documentation range", et)
		}
		// Every sample survives Parse and decodes into its typed body.
		ev, err := Parse(NewEnvelope(et, body, parseNow), parseAtNow())
		if err != nil {
			t.Errorf("%s: %v", et, err)
			continue
		}
		if _, err := ev.DecodeBody(); err != nil {
			t.Errorf("%s: %v", et, err)
		}
	}
	if SampleBody("deal.closed") != nil {
		t.Error("unknown type has a sample")
	}
	// Callers get a copy.
	b := SampleBody(PersonCreated)
	b[0] = 'X'
	if SampleBody(PersonCreated)[0] != '{' {
		t.Error("SampleBody shares its bytes")
	}
}

func TestSampleDeletedVariantsOmitKeys(t *testing.T) {
	p := bodyAs[*Person](t, mustBody(DecodeBody(dispatchEvent(t, PersonDeleted, string(SampleBody(PersonDeleted))))))
	if p.OrganizationIDs != nil || p.ID == 0 {
		t.Errorf("person.deleted: %+v", p)
	}
	if p := bodyAs[*Person](t, mustBody(DecodeBody(dispatchEvent(t, PersonCreated, string(SampleBody(PersonCreated)))))); p.OrganizationIDs == nil {
		t.Errorf("person.created must carry organization_ids")
	}
	o := bodyAs[*Opportunity](t, mustBody(DecodeBody(dispatchEvent(t, OpportunityDeleted, string(SampleBody(OpportunityDeleted))))))
	if o.PersonIDs != nil || o.OrganizationIDs != nil || o.ID == 0 {
		t.Errorf("opportunity.deleted: %+v", o)
	}
	if o := bodyAs[*Opportunity](t, mustBody(DecodeBody(dispatchEvent(t, OpportunityUpdated, string(SampleBody(OpportunityUpdated)))))); o.PersonIDs == nil || o.OrganizationIDs == nil {
		t.Errorf("opportunity.updated must carry the ids: %+v", o)
	}
}
