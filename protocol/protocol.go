// Package protocol holds the JSON shapes of the partner protocol that more than
// one edge writes: the report item answered by the HTTP API and carried by
// webhook events, and the protocol's time format.
package protocol

import (
	"time"

	"github.com/google/uuid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/wallet"
)

// TimeLayout is the protocol's time format (Moscow time by default).
const TimeLayout = "2006-01-02 15:04:05"

// FormatTime writes t in the protocol's format in loc.
func FormatTime(t time.Time, loc *time.Location) string { return t.In(loc).Format(TimeLayout) }

// ReportItem is one operation as the report shows it (PROTOCOL.md 4.5).
type ReportItem struct {
	OperationID     uuid.UUID    `json:"operationId"`
	OperationType   string       `json:"operationType"`
	Status          string       `json:"status"`
	Description     string       `json:"description"`
	OperationDate   string       `json:"operationDate"`
	Amount          money.Amount `json:"amount"`
	FormattedAmount string       `json:"formattedAmount"`
	TCP             *uuid.UUID   `json:"tcp"` // the source's name for the TSP id
}

// NewReportItem renders an operation: the amount is always positive and
// formattedAmount carries the direction (+ for CREDIT and REFUND).
func NewReportItem(op wallet.Operation, loc *time.Location) ReportItem {
	sign := money.Minus
	if op.Type == wallet.Credit || op.Type == wallet.Refund {
		sign = money.Plus
	}
	item := ReportItem{
		OperationID: op.ID, OperationType: string(op.Type), Status: string(op.Status),
		Description: op.Description, OperationDate: FormatTime(op.CreatedAt, loc),
		Amount: op.Amount, FormattedAmount: op.Amount.Format(sign),
	}
	if op.TSPID != uuid.Nil {
		tsp := op.TSPID
		item.TCP = &tsp
	}
	return item
}
