package temporalclient

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Custom search attributes the panel's engine sets on every operation's workflow, so
// operators can filter stuck work in the Temporal UI
// (ClusterducksNetwork=3 AND ClusterducksObjectType="volume"). They live here, beside the
// client, because both the panel and the test harness register them (the harness cannot
// import workflows, whose tests import it).
var (
	SearchNetwork    = temporal.NewSearchAttributeKeyInt64("ClusterducksNetwork")
	SearchObjectType = temporal.NewSearchAttributeKeyKeyword("ClusterducksObjectType")
	SearchObjectID   = temporal.NewSearchAttributeKeyInt64("ClusterducksObjectID")
)

// SearchAttributeTypes are the custom search attributes to register in a namespace.
func SearchAttributeTypes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		SearchNetwork.GetName():    enumspb.INDEXED_VALUE_TYPE_INT,
		SearchObjectType.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SearchObjectID.GetName():   enumspb.INDEXED_VALUE_TYPE_INT,
	}
}

// RegisterSearchAttributes registers the panel's custom search attributes
// (SearchAttributeTypes) in namespace ns; attributes that already exist are left as they
// are, so it is safe at every start.
func RegisterSearchAttributes(ctx context.Context, c client.Client, ns string) error {
	attrs := SearchAttributeTypes()
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		return fmt.Errorf("list search attributes of %s: %w", ns, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, t := range attrs {
		if _, ok := have.GetCustomAttributes()[name]; !ok {
			missing[name] = t
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: ns, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes to %s: %w", ns, err)
	}
	return nil
}
