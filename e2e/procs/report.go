package procs

import (
	"fmt"

	"github.com/perspektiva/walletd/client"
)

// ReadReport reads every page of a wallet's report through page, which
// fetches page n (a test's page may call until it has a final answer), and
// checks that the pages hold the report's totalElements operations.
func ReadReport(page func(n int) (client.ReportPage, error)) ([]client.Operation, error) {
	var all []client.Operation
	for n := 0; ; n++ {
		rp, err := page(n)
		if err != nil {
			return nil, fmt.Errorf("page %d: %w", n, err)
		}
		all = append(all, rp.Content...)
		if n+1 >= rp.TotalPages {
			if len(all) != rp.TotalElements {
				return nil, fmt.Errorf("%d operations on the pages, totalElements %d", len(all), rp.TotalElements)
			}
			return all, nil
		}
	}
}
