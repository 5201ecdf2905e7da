package harness

import (
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
)

// VersionMarkers reads a workflow history's GetVersion markers: the change id of each, in
// order, and the number of search-attribute upserts (the SDK upserts
// TemporalChangeVersion with each new marker).
func VersionMarkers(events []*historypb.HistoryEvent) (changeIDs []string, upserts int) {
	for _, e := range events {
		if m := e.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "Version" {
			var id string
			if p := m.GetDetails()["change-id"]; p != nil && len(p.GetPayloads()) > 0 {
				_ = converter.GetDefaultDataConverter().FromPayload(p.GetPayloads()[0], &id)
			}
			changeIDs = append(changeIDs, id)
		}
		if e.GetUpsertWorkflowSearchAttributesEventAttributes() != nil {
			upserts++
		}
	}
	return changeIDs, upserts
}
