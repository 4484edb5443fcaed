package wallet_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/perspektiva/walletd/money"
	"github.com/perspektiva/walletd/sbp"
	"github.com/perspektiva/walletd/store/storetest"
	"github.com/perspektiva/walletd/wallet"
)

// The model below restates PROTOCOL.md sections 4.3-4.9 and 5 on its own,
// without the service's code: limits, balances, pending sums, monthly usage and
// statuses, and which refusal comes first when several apply.

// limit is a limit value; ok false means "no limit" (null).
type limit struct {
	v  money.Amount
	ok bool
}

func lim(roubles int64) limit { return limit{v: money.Amount(roubles * 100), ok: true} }

var noLimit = limit{}

// stricter returns min(a, b) where an absent limit is no limit.
func stricter(a, b limit) limit {
	switch {
	case !a.ok:
		return b
	case !b.ok:
		return a
	case b.v < a.v:
		return b
	}
	return a
}

func (l limit) optional() wallet.Optional { return wallet.Optional{Value: l.v, Valid: l.ok} }

type typeLimit struct {
	oneTime, month limit
	enabled        bool
}

type levelLimit struct {
	balance, statutory limit
	types              map[wallet.OperationType]typeLimit
}

// systemTable is an operator's table of limits per identification level.
type systemTable [3]levelLimit

// defaultTable is the table of PROTOCOL.md section 5.
var defaultTable = systemTable{
	wallet.Elementary: {balance: lim(15_000), statutory: lim(40_000), types: map[wallet.OperationType]typeLimit{
		wallet.Credit:  {oneTime: lim(15_000), month: noLimit, enabled: true},
		wallet.Payment: {oneTime: lim(15_000), month: lim(40_000), enabled: true},
		wallet.Debit:   {oneTime: lim(0), month: lim(0), enabled: false},
	}},
	wallet.Personalized: {balance: lim(60_000), statutory: lim(200_000), types: map[wallet.OperationType]typeLimit{
		wallet.Credit:  {oneTime: lim(60_000), month: noLimit, enabled: true},
		wallet.Payment: {oneTime: lim(60_000), month: lim(200_000), enabled: true},
		wallet.Debit:   {oneTime: lim(60_000), month: lim(200_000), enabled: true},
	}},
	wallet.Identified: {balance: lim(600_000), statutory: noLimit, types: map[wallet.OperationType]typeLimit{
		wallet.Credit:  {oneTime: lim(600_000), month: noLimit, enabled: true},
		wallet.Payment: {oneTime: lim(600_000), month: noLimit, enabled: true},
		wallet.Debit:   {oneTime: lim(600_000), month: noLimit, enabled: true},
	}},
}

// loweredTable is an operator's table far below the statutory one (PROTOCOL.md
// section 5: the operator may lower limits), with statutory caps under the sum
// of the types' own monthly limits and a monthly CREDIT limit, so that every
// limit is within reach of a short sequence.
var loweredTable = systemTable{
	wallet.Elementary: {balance: lim(150), statutory: lim(200), types: map[wallet.OperationType]typeLimit{
		wallet.Credit:  {oneTime: lim(150), month: noLimit, enabled: true},
		wallet.Payment: {oneTime: lim(100), month: lim(250), enabled: true},
		wallet.Debit:   {oneTime: lim(0), month: lim(0), enabled: false},
	}},
	wallet.Personalized: {balance: lim(600), statutory: lim(700), types: map[wallet.OperationType]typeLimit{
		wallet.Credit:  {oneTime: lim(600), month: noLimit, enabled: true},
		wallet.Payment: {oneTime: lim(500), month: lim(600), enabled: true},
		wallet.Debit:   {oneTime: lim(400), month: lim(500), enabled: true},
	}},
	wallet.Identified: {balance: lim(6000), statutory: noLimit, types: map[wallet.OperationType]typeLimit{
		wallet.Credit:  {oneTime: lim(6000), month: lim(20_000), enabled: true},
		wallet.Payment: {oneTime: lim(6000), month: noLimit, enabled: true},
		wallet.Debit:   {oneTime: lim(3000), month: noLimit, enabled: true},
	}},
}

// config returns the table as the service's configuration.
func (st *systemTable) config() wallet.SystemLimits {
	var out wallet.SystemLimits
	for lvl, l := range st {
		tl := func(typ wallet.OperationType) wallet.TypeLimits {
			x := l.types[typ]
			return wallet.TypeLimits{OneTime: x.oneTime.optional(), Month: x.month.optional(), Enabled: x.enabled}
		}
		out[lvl] = wallet.LevelLimits{
			Balance: l.balance.optional(), StatutoryMonth: l.statutory.optional(),
			Credit: tl(wallet.Credit), Payment: tl(wallet.Payment), Debit: tl(wallet.Debit),
		}
	}
	return out
}

var limitedTypes = []wallet.OperationType{wallet.Credit, wallet.Payment, wallet.Debit}

type typeOverride struct {
	oneTime, month limit
	enabled        *bool
}

// override is a partner's own settings; they survive identification changes.
type override struct {
	balance limit
	types   map[wallet.OperationType]typeOverride
}

// modelWallet is what the model knows of one wallet.
type modelWallet struct {
	sys     *systemTable // the operator's table the service runs with
	id      uuid.UUID
	phone   string
	level   wallet.Identification
	closed  bool
	balance money.Amount
	used    map[wallet.OperationType]money.Amount // this month: SUCCESS and PENDING
	ovr     override
}

type modelTopUp struct {
	id        uuid.UUID
	w         *modelWallet
	qrc       string
	amount    money.Amount
	status    wallet.OperationStatus
	expiresAt time.Time
	idemKey   string
}

type modelPayment struct {
	id       uuid.UUID
	w        *modelWallet
	token    uuid.UUID
	tsp      uuid.UUID
	amount   money.Amount
	refunded money.Amount
}

type modelPayout struct {
	id     uuid.UUID
	w      *modelWallet
	amount money.Amount
	status wallet.OperationStatus
}

// effective is min(partner, system) per field; a type is enabled where both allow it.
func (w *modelWallet) effective() levelLimit {
	sys := w.sys[w.level]
	eff := levelLimit{balance: stricter(sys.balance, w.ovr.balance), statutory: sys.statutory, types: map[wallet.OperationType]typeLimit{}}
	for _, typ := range limitedTypes {
		s, o := sys.types[typ], w.ovr.types[typ]
		e := typeLimit{oneTime: stricter(s.oneTime, o.oneTime), month: stricter(s.month, o.month), enabled: s.enabled}
		if o.enabled != nil {
			e.enabled = s.enabled && *o.enabled
		}
		eff.types[typ] = e
	}
	return eff
}

// machine runs one random sequence of requests against the service and the model.
type machine struct {
	v        *env
	svc      *wallet.Service
	sys      *systemTable
	partner  uuid.UUID
	tsps     []uuid.UUID
	foreign  uuid.UUID // another partner's TSP
	phones   []string
	wallets  []*modelWallet
	active   map[string]*modelWallet
	topUps   []*modelTopUp
	payments []*modelPayment
	payouts  []*modelPayout
	keys     int
	steps    int
	seen     modelOutcomes
}

func (m *machine) pending(w *modelWallet) money.Amount {
	var sum money.Amount
	for _, tu := range m.topUps {
		if tu.w == w && tu.status == wallet.Pending {
			sum += tu.amount
		}
	}
	return sum
}

func (m *machine) hasPending(w *modelWallet) bool {
	if m.pending(w) > 0 {
		return true
	}
	for _, p := range m.payouts {
		if p.w == w && p.status == wallet.Pending {
			return true
		}
	}
	return false
}

// modelOutcomes counts what one engine's sequences exercised, as "request: code"
// (or "request: ok"), where the request is what is described before any ":".
type modelOutcomes map[string]int

func (o modelOutcomes) count(what string, code wallet.Code) {
	what, _, _ = strings.Cut(what, ":")
	if code == "" {
		code = "ok"
	}
	o[what+": "+string(code)]++
}

// missing lists the outcomes of want never counted; an outcome is counted
// when it, or a refinement of it such as the limit named after a code, is.
func (o modelOutcomes) missing(want []string) []string {
	var out []string
	for _, w := range want {
		seen := false
		for k := range o {
			seen = seen || k == w || strings.HasPrefix(k, w+" ")
		}
		if !seen {
			out = append(out, w)
		}
	}
	return out
}

// refusal is what the model expects of a request: success (code ""), or a
// code and, for limit and balance refusals, the details naming the limit.
type refusal struct {
	code        wallet.Code
	limit       string
	value, used money.Amount
}

func refuse(code wallet.Code) refusal { return refusal{code: code} }

func limitRefusal(limit string, value, used money.Amount) refusal {
	return refusal{code: wallet.CodeLimitExceeded, limit: limit, value: value, used: used}
}

// expect compares a service answer with the model's expectation.
func (m *machine) expect(t *rapid.T, what string, err error, want refusal) {
	t.Helper()
	m.seen.count(what, wallet.Code(strings.TrimSpace(string(want.code)+" "+want.limit)))
	got := wallet.ErrorCode(err)
	if err != nil && got == "" {
		t.Fatalf("%s: unexpected failure: %v", what, err)
	}
	if got != want.code {
		t.Fatalf("%s: got %q (%v), model expects %q %s", what, got, err, want.code, want.limit)
	}
	if want.limit == "" {
		return
	}
	var e *wallet.Error
	if !errors.As(err, &e) || e.Details == nil {
		t.Fatalf("%s: %v carries no details, model expects %s", what, err, want.limit)
	}
	d := e.Details
	if d.Limit != want.limit || d.Value != want.value || d.Used != want.used || d.Available != max(want.value-want.used, 0) {
		t.Fatalf("%s: details %s value %s used %s available %s; model expects %s value %s used %s",
			what, d.Limit, d.Value, d.Used, d.Available, want.limit, want.value, want.used)
	}
}

// expectCode compares a service answer with a code the model expects.
func (m *machine) expectCode(t *rapid.T, what string, err error, want wallet.Code) {
	t.Helper()
	m.expect(t, what, err, refuse(want))
}

// typeLimitsRefusal checks one-time and monthly limits of a type.
func typeLimitsRefusal(eff levelLimit, used map[wallet.OperationType]money.Amount, typ wallet.OperationType, amount money.Amount) refusal {
	tl := eff.types[typ]
	if tl.oneTime.ok && amount > tl.oneTime.v {
		return limitRefusal(string(typ)+".oneTimeLimit", tl.oneTime.v, 0)
	}
	if tl.month.ok && used[typ]+amount > tl.month.v {
		return limitRefusal(string(typ)+".monthLimit", tl.month.v, used[typ])
	}
	return refusal{}
}

// spendRefusal is the refusal of a PAYMENT or DEBIT: enabled, own limits, the
// statutory cap on PAYMENT + DEBIT, then the balance.
func spendRefusal(w *modelWallet, typ wallet.OperationType, amount money.Amount) refusal {
	eff := w.effective()
	if !eff.types[typ].enabled {
		return refuse(wallet.CodeOperationDisabled)
	}
	if r := typeLimitsRefusal(eff, w.used, typ, amount); r.code != "" {
		return r
	}
	spent := w.used[wallet.Payment] + w.used[wallet.Debit]
	if eff.statutory.ok && spent+amount > eff.statutory.v {
		return limitRefusal("statutoryMonthLimit", eff.statutory.v, spent)
	}
	if amount > w.balance {
		return refusal{code: wallet.CodeInsufficientFunds, limit: "balance", value: w.balance}
	}
	return refusal{}
}

// spendRoom is the largest PAYMENT or DEBIT the wallet allows now, 0 when none.
func spendRoom(w *modelWallet, typ wallet.OperationType) money.Amount {
	eff := w.effective()
	tl := eff.types[typ]
	if !tl.enabled {
		return 0
	}
	room := w.balance
	if tl.oneTime.ok {
		room = min(room, tl.oneTime.v)
	}
	if tl.month.ok {
		room = min(room, tl.month.v-w.used[typ])
	}
	if eff.statutory.ok {
		room = min(room, eff.statutory.v-w.used[wallet.Payment]-w.used[wallet.Debit])
	}
	return max(room, 0)
}

// balanceRefusal checks that a credit keeps balance + pending top-ups within the balance limit.
func balanceRefusal(eff levelLimit, balance, pending, amount money.Amount) refusal {
	if eff.balance.ok && balance+pending+amount > eff.balance.v {
		return limitRefusal("balanceLimit", eff.balance.v, balance+pending)
	}
	return refusal{}
}

// creditRefusal is the refusal of a new top-up.
func (m *machine) creditRefusal(w *modelWallet, amount money.Amount) refusal {
	eff := w.effective()
	if !eff.types[wallet.Credit].enabled {
		return refuse(wallet.CodeOperationDisabled)
	}
	if r := typeLimitsRefusal(eff, w.used, wallet.Credit, amount); r.code != "" {
		return r
	}
	return balanceRefusal(eff, w.balance, m.pending(w), amount)
}

// creditRoom is the largest top-up the wallet accepts now, 0 when none.
func (m *machine) creditRoom(w *modelWallet) money.Amount {
	eff := w.effective()
	tl := eff.types[wallet.Credit]
	if !tl.enabled {
		return 0
	}
	room := rub("1000000.00")
	if tl.oneTime.ok {
		room = min(room, tl.oneTime.v)
	}
	if tl.month.ok {
		room = min(room, tl.month.v-w.used[wallet.Credit])
	}
	if eff.balance.ok {
		room = min(room, eff.balance.v-w.balance-m.pending(w))
	}
	return max(room, 0)
}

// pickWallet draws a wallet of the sequence, mostly an active one.
func (m *machine) pickWallet(t *rapid.T) *modelWallet {
	var active []*modelWallet
	for _, w := range m.wallets {
		if !w.closed {
			active = append(active, w)
		}
	}
	if len(active) > 0 && rapid.IntRange(0, 9).Draw(t, "anyWallet") != 0 {
		return rapid.SampledFrom(active).Draw(t, "wallet")
	}
	return rapid.SampledFrom(m.wallets).Draw(t, "wallet")
}

// pickFunded draws a wallet that has money, if any, most of the time.
func (m *machine) pickFunded(t *rapid.T) *modelWallet {
	var funded []*modelWallet
	for _, w := range m.wallets {
		if !w.closed && w.balance > 0 {
			funded = append(funded, w)
		}
	}
	if len(funded) > 0 && rapid.IntRange(0, 3).Draw(t, "anyWallet") != 0 {
		return rapid.SampledFrom(funded).Draw(t, "fundedWallet")
	}
	return m.pickWallet(t)
}

// pickTopUp draws a top-up, mostly a pending one.
func (m *machine) pickTopUp(t *rapid.T) *modelTopUp {
	var pending []*modelTopUp
	for _, tu := range m.topUps {
		if tu.status == wallet.Pending {
			pending = append(pending, tu)
		}
	}
	if len(pending) > 0 && rapid.IntRange(0, 4).Draw(t, "anyTopUp") != 0 {
		return rapid.SampledFrom(pending).Draw(t, "topUp")
	}
	return rapid.SampledFrom(m.topUps).Draw(t, "topUp")
}

// amount draws an amount for w: small, medium, large, at and just above the limits of
// the table, the whole balance, exactly the room the limits leave (room) and
// one kopeck more, or a part of that room.
func (m *machine) amount(t *rapid.T, w *modelWallet, label string, room money.Amount) money.Amount {
	// Sizes follow the balance limit of the wallet's level in the table.
	scale := int64(w.sys[w.level].balance.v)
	var a money.Amount
	// rapid favours the first cases: the room the limits leave comes first.
	switch rapid.IntRange(0, 7).Draw(t, label+"Kind") {
	case 0:
		a = money.Amount(rapid.Int64Range(1, int64(max(room, 1))).Draw(t, label+"PartOfRoom"))
	case 1:
		return max(room, 1)
	case 2:
		return room + 1
	case 3:
		a = money.Amount(rapid.Int64Range(1, scale/5).Draw(t, label))
	case 4:
		a = money.Amount(rapid.Int64Range(scale/5, scale).Draw(t, label))
	case 5:
		a = money.Amount(rapid.Int64Range(scale, 12*scale).Draw(t, label))
	case 6:
		// A value of the table, or one kopeck above it.
		var marks []money.Amount
		for _, l := range w.sys {
			for _, x := range []limit{l.balance, l.statutory} {
				if x.ok && x.v > 0 {
					marks = append(marks, x.v)
				}
			}
			for _, typ := range limitedTypes { // a fixed order: rapid replays draws by index
				tl := l.types[typ]
				for _, x := range []limit{tl.oneTime, tl.month} {
					if x.ok && x.v > 0 {
						marks = append(marks, x.v)
					}
				}
			}
		}
		a = rapid.SampledFrom(marks).Draw(t, label) + money.Amount(rapid.IntRange(0, 1).Draw(t, label+"Above"))
	case 7:
		a = w.balance
	}
	if a <= 0 {
		a = 1
	}
	if rapid.IntRange(0, 5).Draw(t, label+"Kopecks13") == 0 {
		// The sandbox fails payouts of amounts ending in .13.
		a = a - a%100 + 13
	}
	return a
}

func (m *machine) register(t *rapid.T) {
	phone := rapid.SampledFrom(m.phones).Draw(t, "phone")
	level := wallet.Identification(rapid.IntRange(0, 2).Draw(t, "level"))
	got, err := m.svc.Register(m.v.ctx, m.partner, phone, level)
	m.expectCode(t, "register", err, "")
	if w, ok := m.active[phone]; ok {
		if got.ID != w.id || got.Identification != w.level {
			t.Fatalf("register %s again: got wallet %s at %s, want the existing %s at %s unchanged",
				phone, got.ID, got.Identification, w.id, w.level)
		}
		return
	}
	if got.Identification != level || got.Balance != 0 || got.Status != wallet.Active {
		t.Fatalf("new wallet: %+v, want %s, zero balance, ACTIVE", got, level)
	}
	w := &modelWallet{sys: m.sys, id: got.ID, phone: phone, level: level, used: map[wallet.OperationType]money.Amount{},
		ovr: override{types: map[wallet.OperationType]typeOverride{}}}
	m.wallets = append(m.wallets, w)
	m.active[phone] = w
}

func (m *machine) refill(t *rapid.T) {
	w := m.pickWallet(t)
	amount := m.amount(t, w, "amount", m.creditRoom(w))
	key := ""
	if rapid.Bool().Draw(t, "withKey") {
		m.keys++
		key = fmt.Sprintf("refill-%d", m.keys)
	}
	want := refuse(wallet.CodeWalletClosed)
	if !w.closed {
		want = m.creditRefusal(w, amount)
	}
	op, err := m.svc.Refill(m.v.ctx, m.partner, w.id, amount, key)
	m.expect(t, fmt.Sprintf("refill: %s into %s wallet (balance %s, pending %s)", amount, w.level, w.balance, m.pending(w)), err, want)
	if want.code != "" {
		return
	}
	if op.Status != wallet.Pending || op.Amount != amount || op.QRCID == "" {
		t.Fatalf("refill answered %+v", op)
	}
	m.topUps = append(m.topUps, &modelTopUp{id: op.ID, w: w, qrc: op.QRCID, amount: amount, status: wallet.Pending,
		expiresAt: m.v.clock.Now().Add(m.v.ttl), idemKey: key})
	w.used[wallet.Credit] += amount
}

// refillAgain repeats a top-up under its Idempotency-Key: the same request
// replays the operation, another amount is refused.
func (m *machine) refillAgain(t *rapid.T) {
	var keyed []*modelTopUp
	for _, tu := range m.topUps {
		if tu.idemKey != "" {
			keyed = append(keyed, tu)
		}
	}
	if len(keyed) == 0 {
		m.refill(t)
		return
	}
	tu := rapid.SampledFrom(keyed).Draw(t, "topUp")
	amount := tu.amount
	same := rapid.Bool().Draw(t, "sameRequest")
	if !same {
		amount++
	}
	op, err := m.svc.Refill(m.v.ctx, m.partner, tu.w.id, amount, tu.idemKey)
	// A closed wallet changes nothing: a repeat gets its first answer.
	switch {
	case !same:
		m.expectCode(t, "refill again with another amount", err, wallet.CodeIdempotencyReused)
	default:
		m.expectCode(t, "refill again", err, "")
		if op.ID != tu.id || op.Status != tu.status {
			t.Fatalf("refill again: got %s %s, want the first operation %s %s", op.ID, op.Status, tu.id, tu.status)
		}
	}
}

// finishTopUp ends a pending top-up in the model.
func finishTopUp(tu *modelTopUp, status wallet.OperationStatus) {
	tu.status = status
	if status == wallet.Success {
		tu.w.balance += tu.amount
		return
	}
	tu.w.used[wallet.Credit] -= tu.amount
}

// settle is the SBP side confirming or declining a top-up link.
func (m *machine) settle(t *rapid.T, confirm bool) {
	if len(m.topUps) == 0 {
		m.refill(t)
		return
	}
	if rapid.IntRange(0, 9).Draw(t, "unknownQRC") == 0 {
		var err error
		if confirm {
			_, err = m.svc.ConfirmTopUp(m.v.ctx, "UNKNOWNQRC")
		} else {
			_, err = m.svc.DeclineTopUp(m.v.ctx, "UNKNOWNQRC")
		}
		m.expectCode(t, "settle an unknown link", err, wallet.CodeOperationNotFound)
		return
	}
	tu := m.pickTopUp(t)
	from := tu.status
	if tu.status == wallet.Pending {
		w := tu.w
		switch {
		case !m.v.clock.Now().Before(tu.expiresAt):
			finishTopUp(tu, wallet.Expired)
		case !confirm:
			finishTopUp(tu, wallet.Failed)
		default:
			// Limits again, as the wallet will be once credited: its own amount
			// is already in the usage; the balance limit counts the balance alone.
			eff := w.effective()
			used := map[wallet.OperationType]money.Amount{wallet.Credit: w.used[wallet.Credit] - tu.amount}
			if !eff.types[wallet.Credit].enabled || typeLimitsRefusal(eff, used, wallet.Credit, tu.amount).code != "" ||
				balanceRefusal(eff, w.balance, 0, tu.amount).code != "" {
				finishTopUp(tu, wallet.Failed)
			} else {
				finishTopUp(tu, wallet.Success)
			}
		}
	}
	var (
		op  wallet.Operation
		err error
	)
	if confirm {
		op, err = m.svc.ConfirmTopUp(m.v.ctx, tu.qrc)
	} else {
		op, err = m.svc.DeclineTopUp(m.v.ctx, tu.qrc)
	}
	m.expectCode(t, "settle", err, "")
	m.seen.count(fmt.Sprintf("settle(confirm=%v) %s->%s", confirm, from, op.Status), "")
	if op.ID != tu.id || op.Status != tu.status {
		t.Fatalf("confirm=%v of %s into %s wallet (balance %s): got %s, model expects %s",
			confirm, tu.amount, tu.w.level, tu.w.balance, op.Status, tu.status)
	}
}

func (m *machine) confirm(t *rapid.T) { m.settle(t, true) }
func (m *machine) decline(t *rapid.T) { m.settle(t, false) }

// expire moves the clock on and runs the expiry of a top-up.
func (m *machine) expire(t *rapid.T) {
	m.v.clock.Advance(rapid.SampledFrom([]time.Duration{0, m.v.ttl / 2, m.v.ttl + time.Second}).Draw(t, "advance"))
	if len(m.topUps) == 0 {
		retry, err := m.svc.ExpireTopUp(m.v.ctx, uuid.New())
		m.expectCode(t, "expire an unknown top-up", err, "")
		if !retry.IsZero() {
			t.Fatalf("expire an unknown top-up: retry at %s", retry)
		}
		return
	}
	tu := m.pickTopUp(t)
	from := tu.status
	var wantRetry time.Time
	if tu.status == wallet.Pending {
		if m.v.clock.Now().Before(tu.expiresAt) {
			wantRetry = tu.expiresAt
		} else {
			finishTopUp(tu, wallet.Expired)
		}
	}
	retry, err := m.svc.ExpireTopUp(m.v.ctx, tu.id)
	m.expectCode(t, "expire", err, "")
	m.seen.count(fmt.Sprintf("expire %s->%s", from, tu.status), "")
	if !retry.Equal(wantRetry) {
		t.Fatalf("expire: retry at %s, want %s", retry, wantRetry)
	}
	m.checkStatus(t, tu.w, tu.id, tu.status)
}

func (m *machine) checkStatus(t *rapid.T, w *modelWallet, opID uuid.UUID, want wallet.OperationStatus) {
	t.Helper()
	op, err := m.svc.Operation(m.v.ctx, m.partner, w.id, opID)
	m.expectCode(t, "operation", err, "")
	if op.Status != want {
		t.Fatalf("operation %s is %s, model expects %s", opID, op.Status, want)
	}
}

// pay initialises a payment and pays; a refused payment may be retried with
// the same token, and a successful one is repeated.
func (m *machine) pay(t *rapid.T) {
	w := m.pickFunded(t)
	pt, err := m.svc.InitPayment(m.v.ctx, m.partner, w.id)
	if w.closed {
		m.expectCode(t, "payment initialisation on a closed wallet", err, wallet.CodeWalletClosed)
		return
	}
	m.expectCode(t, "payment initialisation", err, "")
	token := pt.Token
	if rapid.IntRange(0, 19).Draw(t, "badToken") == 0 {
		token = uuid.New()
	}
	for attempt := 0; attempt < 2; attempt++ {
		amount := m.amount(t, w, "amount", spendRoom(w, wallet.Payment))
		tsp := rapid.SampledFrom(m.tsps).Draw(t, "tsp")
		if rapid.IntRange(0, 9).Draw(t, "foreignTSP") == 0 {
			tsp = m.foreign
		}
		var want refusal
		switch {
		case token != pt.Token:
			want = refuse(wallet.CodeTokenInvalid)
		case tsp == m.foreign:
			want = refuse(wallet.CodeTSPNotFound)
		default:
			want = spendRefusal(w, wallet.Payment, amount)
		}
		req := wallet.PaymentRequest{WalletID: w.id, Token: token, Amount: amount, TSPID: tsp}
		op, err := m.svc.Pay(m.v.ctx, m.partner, req)
		m.expect(t, fmt.Sprintf("pay: %s from %s wallet (balance %s, used %v)", amount, w.level, w.balance, w.used), err, want)
		if want.code != "" {
			// A refused payment leaves the token usable.
			if rapid.Bool().Draw(t, "retry") {
				continue
			}
			return
		}
		if op.Status != wallet.Success || op.Amount != amount {
			t.Fatalf("pay answered %+v", op)
		}
		w.balance -= amount
		w.used[wallet.Payment] += amount
		m.payments = append(m.payments, &modelPayment{id: op.ID, w: w, token: token, tsp: tsp, amount: amount})

		// The same payment again replays it; the token with other data is refused.
		switch rapid.IntRange(0, 3).Draw(t, "repeat") {
		case 1:
			again, err := m.svc.Pay(m.v.ctx, m.partner, req)
			m.expectCode(t, "repeat the payment", err, "")
			if again.ID != op.ID {
				t.Fatalf("repeated payment made operation %s, want %s", again.ID, op.ID)
			}
		case 2:
			req.Amount++
			_, err := m.svc.Pay(m.v.ctx, m.partner, req)
			m.expectCode(t, "reuse the token for another amount", err, wallet.CodeTokenInvalid)
		}
		return
	}
}

// payAgain repeats a past payment, however long ago and whatever became of
// its wallet since: the first answer again, and no money moves.
func (m *machine) payAgain(t *rapid.T) {
	if len(m.payments) == 0 {
		m.pay(t)
		return
	}
	p := rapid.SampledFrom(m.payments).Draw(t, "payment")
	what := "repeat a past payment"
	if p.w.closed {
		what += " of a closed wallet"
	}
	op, err := m.svc.Pay(m.v.ctx, m.partner, wallet.PaymentRequest{WalletID: p.w.id, Token: p.token, Amount: p.amount, TSPID: p.tsp})
	m.expectCode(t, what, err, "")
	if op.ID != p.id {
		t.Fatalf("%s: operation %s, want %s", what, op.ID, p.id)
	}
}

// refund returns all, part of, or more than what is left of a payment.
func (m *machine) refund(t *rapid.T) {
	if len(m.payments) == 0 || rapid.IntRange(0, 9).Draw(t, "unknownToken") == 0 {
		w := m.pickWallet(t)
		_, err := m.svc.Refund(m.v.ctx, m.partner, w.id, uuid.New(), 0, "")
		want := wallet.CodeTokenInvalid
		if w.closed {
			want = wallet.CodeWalletClosed
		}
		m.expectCode(t, "refund an unknown payment", err, want)
		return
	}
	p := rapid.SampledFrom(m.payments).Draw(t, "payment")
	w := p.w
	left := p.amount - p.refunded
	var requested money.Amount
	switch rapid.IntRange(0, 3).Draw(t, "refundKind") {
	case 0: // all that is left
	case 1:
		requested = money.Amount(rapid.Int64Range(1, int64(max(left, 1))).Draw(t, "part"))
	case 2:
		requested = left + money.Amount(rapid.Int64Range(1, 100_000).Draw(t, "over"))
	case 3:
		requested = left
	}
	amount := requested
	if amount == 0 {
		amount = left
	}
	var want refusal
	switch {
	case w.closed:
		want = refuse(wallet.CodeWalletClosed)
	case left == 0, amount > left:
		want = refuse(wallet.CodeValidation)
	default:
		// Neither CREDIT limits nor "enabled": only the balance limit.
		want = balanceRefusal(w.effective(), w.balance, m.pending(w), amount)
	}
	op, err := m.svc.Refund(m.v.ctx, m.partner, w.id, p.token, requested, "")
	m.expect(t, fmt.Sprintf("refund: %s (requested %s) of %s/%s to %s wallet (balance %s, pending %s)",
		amount, requested, p.refunded, p.amount, w.level, w.balance, m.pending(w)), err, want)
	if want.code != "" {
		return
	}
	if op.Amount != amount || op.Status != wallet.Success || op.ParentID != p.id {
		t.Fatalf("refund answered %+v", op)
	}
	p.refunded += amount
	w.balance += amount
	got, err := m.svc.Operation(m.v.ctx, m.partner, w.id, p.id)
	m.expectCode(t, "payment", err, "")
	if got.Refunded != p.refunded {
		t.Fatalf("payment refunded %s, model expects %s", got.Refunded, p.refunded)
	}
}

// withdraw holds money for a payout to a bank.
func (m *machine) withdraw(t *rapid.T) {
	w := m.pickFunded(t)
	amount := m.amount(t, w, "amount", spendRoom(w, wallet.Debit))
	bank := sbpBank
	if rapid.IntRange(0, 9).Draw(t, "unknownBank") == 0 {
		bank = "100000000999"
	}
	var want refusal
	switch {
	case w.closed:
		want = refuse(wallet.CodeWalletClosed)
	case bank != sbpBank:
		want = refuse(wallet.CodeBankNotFound)
	default:
		want = spendRefusal(w, wallet.Debit, amount)
	}
	op, err := m.svc.Withdraw(m.v.ctx, m.partner, w.id, bank, amount, "")
	m.expect(t, fmt.Sprintf("withdraw: %s from %s wallet (balance %s, used %v)", amount, w.level, w.balance, w.used), err, want)
	if want.code != "" {
		return
	}
	if op.Status != wallet.Pending || op.Amount != amount {
		t.Fatalf("withdraw answered %+v", op)
	}
	w.balance -= amount
	w.used[wallet.Debit] += amount
	m.payouts = append(m.payouts, &modelPayout{id: op.ID, w: w, amount: amount, status: wallet.Pending})
}

// payout runs the background work of a withdrawal; the sandbox (no delay)
// settles it at once and fails amounts ending in .13.
func (m *machine) payout(t *rapid.T) {
	if len(m.payouts) == 0 {
		retry, err := m.svc.ProcessPayout(m.v.ctx, uuid.New())
		m.expectCode(t, "payout of an unknown operation", err, "")
		if !retry.IsZero() {
			t.Fatalf("payout of an unknown operation: retry at %s", retry)
		}
		return
	}
	var pending []*modelPayout
	for _, p := range m.payouts {
		if p.status == wallet.Pending {
			pending = append(pending, p)
		}
	}
	p := rapid.SampledFrom(m.payouts).Draw(t, "payout")
	if len(pending) > 0 && rapid.IntRange(0, 4).Draw(t, "anyPayout") != 0 {
		p = rapid.SampledFrom(pending).Draw(t, "pendingPayout")
	}
	from := p.status
	if p.status == wallet.Pending {
		if p.amount%100 == 13 {
			// A failed payout returns the held amount and frees its usage.
			p.status = wallet.Failed
			p.w.balance += p.amount
			p.w.used[wallet.Debit] -= p.amount
		} else {
			p.status = wallet.Success
		}
	}
	retry, err := m.svc.ProcessPayout(m.v.ctx, p.id)
	m.expectCode(t, "payout", err, "")
	m.seen.count(fmt.Sprintf("payout %s->%s", from, p.status), "")
	if !retry.IsZero() {
		t.Fatalf("payout: retry at %s, want it settled", retry)
	}
	m.checkStatus(t, p.w, p.id, p.status)
}

func (m *machine) identify(t *rapid.T) {
	w := m.pickWallet(t)
	level := wallet.Identification(rapid.IntRange(0, 2).Draw(t, "level"))
	got, err := m.svc.Identify(m.v.ctx, m.partner, w.id, level)
	if w.closed {
		m.expectCode(t, "identify a closed wallet", err, wallet.CodeWalletClosed)
		return
	}
	m.expectCode(t, "identify", err, "")
	if got.Identification != level {
		t.Fatalf("identify: got %s, want %s", got.Identification, level)
	}
	w.level = level
}

// drawPatch draws one field of a limits request: absent, null, a value within
// the system's ceiling, and where invalid values are wanted, above the ceiling
// or negative.
func drawPatch(t *rapid.T, label string, ceiling limit, used money.Amount, invalid bool) (wallet.Patch, bool) {
	kinds := 3
	if invalid {
		kinds = 5
	}
	switch rapid.IntRange(0, kinds).Draw(t, label) {
	case 0:
		return wallet.Patch{}, true
	case 1:
		return wallet.Patch{Set: true}, true
	case 2, 3:
		top := int64(rub("100000.00"))
		if ceiling.ok {
			top = int64(ceiling.v)
		}
		v := rapid.SampledFrom([]int64{0, top, int64(used), int64(used) + 100_000, top / 2}).Draw(t, label+"Value")
		v = min(v, top)
		return wallet.Patch{Set: true, Value: wallet.Some(money.Amount(v))}, true
	case 4:
		if !ceiling.ok {
			return wallet.Patch{Set: true, Value: wallet.Some(rub("999999.99"))}, true
		}
		return wallet.Patch{Set: true, Value: wallet.Some(ceiling.v + 1)}, false
	default:
		return wallet.Patch{Set: true, Value: wallet.Some(-1)}, false
	}
}

func toLimit(o wallet.Optional) limit { return limit{v: o.Value, ok: o.Valid} }

// setLimits sends a partner's limit settings; one refused field refuses all.
func (m *machine) setLimits(t *rapid.T) {
	w := m.pickWallet(t)
	sys := w.sys[w.level]
	var p wallet.LimitsPatch
	valid := true
	next := override{balance: w.ovr.balance, types: map[wallet.OperationType]typeOverride{}}
	for typ, o := range w.ovr.types {
		next.types[typ] = o
	}
	var ok bool
	invalid := rapid.IntRange(0, 3).Draw(t, "invalid") == 0
	if p.Balance, ok = drawPatch(t, "balanceLimit", sys.balance, w.balance, invalid); !ok {
		valid = false
	}
	if p.Balance.Set {
		next.balance = toLimit(p.Balance.Value)
	}
	p.Types = map[wallet.OperationType]wallet.TypePatch{}
	for _, typ := range limitedTypes {
		if !rapid.Bool().Draw(t, string(typ)) {
			continue
		}
		s, o := sys.types[typ], next.types[typ]
		var tp wallet.TypePatch
		if tp.OneTime, ok = drawPatch(t, string(typ)+".oneTime", s.oneTime, w.used[typ], invalid); !ok {
			valid = false
		}
		if tp.Month, ok = drawPatch(t, string(typ)+".month", s.month, w.used[typ], invalid); !ok {
			valid = false
		}
		switch rapid.IntRange(0, 3).Draw(t, string(typ)+".enabled") {
		case 1:
			tp.Enabled = new(bool)
		case 2, 3:
			// Enabling what the system disables is refused.
			if s.enabled || invalid {
				tp.Enabled = new(bool)
				*tp.Enabled = true
				valid = valid && s.enabled
			}
		}
		if tp.OneTime.Set {
			o.oneTime = toLimit(tp.OneTime.Value)
		}
		if tp.Month.Set {
			o.month = toLimit(tp.Month.Value)
		}
		if tp.Enabled != nil {
			e := *tp.Enabled
			o.enabled = &e
		}
		next.types[typ] = o
		p.Types[typ] = tp
	}
	view, err := m.svc.SetLimits(m.v.ctx, m.partner, w.id, p)
	switch {
	case w.closed:
		m.expectCode(t, "set limits of a closed wallet", err, wallet.CodeWalletClosed)
		return
	case !valid:
		m.expectCode(t, "set limits out of range", err, wallet.CodeValidation)
		return
	}
	m.expectCode(t, "set limits", err, "")
	w.ovr = next
	m.compareLimits(t, w, view)
}

func (m *machine) close(t *rapid.T) {
	w := m.pickWallet(t)
	want := wallet.Code("")
	if !w.closed && (w.balance != 0 || m.hasPending(w)) {
		want = wallet.CodeWalletHasBalance
	}
	got, err := m.svc.Close(m.v.ctx, m.partner, w.id)
	m.expectCode(t, fmt.Sprintf("close: a wallet with balance %s", w.balance), err, want)
	if want != "" {
		return
	}
	if got.Status != wallet.Closed {
		t.Fatalf("close answered %s", got.Status)
	}
	if !w.closed {
		w.closed = true
		delete(m.active, w.phone)
	}
}

// compareLimits checks the effective limits and monthly usage the service shows.
func (m *machine) compareLimits(t *rapid.T, w *modelWallet, view wallet.LimitsView) {
	t.Helper()
	eff := w.effective()
	if view.Effective.Balance != eff.balance.optional() || view.Effective.StatutoryMonth != eff.statutory.optional() {
		t.Fatalf("wallet %s: balance limit %+v, statutory %+v; model expects %+v, %+v",
			w.id, view.Effective.Balance, view.Effective.StatutoryMonth, eff.balance, eff.statutory)
	}
	for _, typ := range limitedTypes {
		got, want := view.Effective.Type(typ), eff.types[typ]
		if got.OneTime != want.oneTime.optional() || got.Month != want.month.optional() || got.Enabled != want.enabled {
			t.Fatalf("wallet %s (%s): %s limits %+v, model expects %+v", w.id, w.level, typ, got, want)
		}
		if view.MonthUsed[typ] != w.used[typ] {
			t.Fatalf("wallet %s: %s monthUsed %s, model expects %s", w.id, typ, view.MonthUsed[typ], w.used[typ])
		}
	}
}

// check compares every wallet of the sequence with the model and audits the ledger.
func (m *machine) check(t *rapid.T) {
	for _, w := range m.wallets {
		view, err := m.svc.Limits(m.v.ctx, m.partner, w.id)
		m.expectCode(t, "limits", err, "")
		got := view.Wallet
		status := wallet.Active
		if w.closed {
			status = wallet.Closed
		}
		if got.Balance != w.balance || got.PendingCredit != m.pending(w) || got.Status != status || got.Identification != w.level {
			t.Fatalf("wallet %s: balance %s, pending %s, %s, %s; model expects %s, %s, %s, %s", w.id,
				got.Balance, got.PendingCredit, got.Status, got.Identification, w.balance, m.pending(w), status, w.level)
		}
		m.compareLimits(t, w, view)
	}
	m.steps++
	if m.steps%auditEvery == 0 {
		m.v.requireAudit(t)
	}
}

// flagSet reports whether a flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// modelBudget bounds the time TestServiceModel spends generating sequences on one engine.
const modelBudget = 12 * time.Second

// Past the budget the test goes on until it has done this much work on an
// engine and seen all of modelCoverage, so that a slow machine cannot pass
// having tested little; at modelHardCap it gives up and fails. A 2-core machine
// runs about 130 sequences (4000 steps) within the budget.
const (
	modelMinSequences = 50
	modelMinSteps     = 1200
	modelHardCap      = 3 * modelBudget
)

// auditEvery is how often (in steps) the property test audits the whole ledger.
const auditEvery = 5

// modelCoverage is what the sequences must exercise on every engine (outcomes
// as modelOutcomes counts them): each kind of request accepted, and each
// refusal the generator sets out to provoke. Outcomes that fewer than one
// sequence in ten reaches (a failed payout, the statutory cap, a refund over
// the balance limit, which limit refused) are only logged: asserting them
// would make the test flaky.
var modelCoverage = []string{
	// Accepted.
	"register: ok",
	"refill: ok",
	"refill again: ok",
	"settle(confirm=true) PENDING->SUCCESS: ok",
	"settle(confirm=false) PENDING->FAILED: ok",
	"expire: ok",
	"pay: ok",
	"repeat the payment: ok",
	"repeat a past payment: ok",
	"refund: ok",
	"withdraw: ok",
	"payout: ok",
	"identify: ok",
	"set limits: ok",
	"close: ok",
	// Refused.
	"refill: LIMIT_EXCEEDED",
	"refill: WALLET_CLOSED",
	"refill again with another amount: IDEMPOTENCY_KEY_REUSED",
	"settle an unknown link: OPERATION_NOT_FOUND",
	"payment initialisation on a closed wallet: WALLET_CLOSED",
	"pay: LIMIT_EXCEEDED",
	"pay: INSUFFICIENT_FUNDS",
	"pay: TOKEN_INVALID",
	"pay: TSP_NOT_FOUND",
	"reuse the token for another amount: TOKEN_INVALID",
	"refund: VALIDATION_ERROR",
	"refund an unknown payment: TOKEN_INVALID",
	"withdraw: LIMIT_EXCEEDED",
	"withdraw: INSUFFICIENT_FUNDS",
	"withdraw: OPERATION_DISABLED",
	"withdraw: BANK_NOT_FOUND",
	"withdraw: WALLET_CLOSED",
	"identify a closed wallet: WALLET_CLOSED",
	"set limits out of range: VALIDATION_ERROR",
	"set limits of a closed wallet: WALLET_CLOSED",
	"close: WALLET_HAS_BALANCE",
}

// TestServiceModel runs random sequences of requests against the service and
// an independent model of the protocol, comparing every answer, balance, pending
// sum, limit and usage, and auditing the ledger as it goes.
func TestServiceModel(t *testing.T) {
	t.Parallel()
	// A failing sequence is reported with its seed (-rapid.seed); keep rapid
	// from writing fail files into the source tree unless asked to.
	if f := flag.Lookup("rapid.nofailfile"); f != nil && !flagSet("rapid.nofailfile") && !flagSet("rapid.failfile") {
		_ = f.Value.Set("true")
	}
	// Unless told otherwise, rapid's 100 sequences are not the limit: the time
	// budget and the minimum work below are.
	if f := flag.Lookup("rapid.checks"); f != nil && !flagSet("rapid.checks") && os.Getenv("RAPID_CHECKS") == "" {
		_ = f.Value.Set("1000")
	}
	storetest.ForEach(t, func(t *testing.T, e storetest.Engine) {
		t.Parallel()
		// One database for the whole run; each sequence gets a partner of its own.
		v := newEnv(t, e, envConfig{topUpTTL: 10 * time.Minute})
		foreign := v.newTSP(t, v.newPartner(t), "Чужой магазин").ID
		// A second service on the same database runs with an operator's
		// lowered table; each sequence uses one of the two.
		lowered, err := wallet.NewService(v.db, wallet.Config{
			Limits: loweredTable.config(), SBP: sbp.NewSandbox("http://wallet.test", 0),
			BankName: bankName, Now: v.clock.Now, TopUpTTL: v.ttl,
		})
		if err != nil {
			t.Fatalf("service with lowered limits: %v", err)
		}
		var (
			start              = time.Now()
			ran, steps, budget int
			failed             bool
			seen               = modelOutcomes{}
		)
		// enough reports whether the sequences may stop: the budget is spent,
		// the minimum work done and everything covered, or the hard cap is reached.
		enough := func() bool {
			spent := time.Since(start)
			return spent > modelHardCap || spent > modelBudget &&
				ran >= modelMinSequences && steps >= modelMinSteps && len(seen.missing(modelCoverage)) == 0
		}
		rapid.Check(t, func(t *rapid.T) {
			// Once there is enough, the remaining sequences pass at once, unless
			// a sequence has already failed and rapid is shrinking it.
			if !failed && enough() {
				budget++
				return
			}
			finished := false
			defer func() { failed = failed || !finished }()
			// Every sequence starts at the same time of the same month.
			v.clock.Set(baseTime)
			partner := v.newPartner(t)
			svc, sys := v.svc, &defaultTable
			if rapid.Bool().Draw(t, "loweredLimits") {
				svc, sys = lowered, &loweredTable
			}
			m := &machine{
				v: v, svc: svc, sys: sys, partner: partner, foreign: foreign,
				tsps:   []uuid.UUID{v.newTSP(t, partner, "Кофейня").ID, v.newTSP(t, partner, "Книжный").ID},
				phones: []string{"9000000001", "9000000002", "9000000003"},
				active: map[string]*modelWallet{},
				seen:   modelOutcomes{},
			}
			m.register(t)
			// Money movement is listed more than once to weight it.
			t.Repeat(map[string]func(*rapid.T){
				"register":    m.register,
				"refill":      m.refill,
				"refill2":     m.refill,
				"refill3":     m.refill,
				"refillAgain": m.refillAgain,
				"confirm":     m.confirm,
				"confirm2":    m.confirm,
				"confirm3":    m.confirm,
				"decline":     m.decline,
				"expire":      m.expire,
				"pay":         m.pay,
				"pay2":        m.pay,
				"pay3":        m.pay,
				"payAgain":    m.payAgain,
				"refund":      m.refund,
				"refund2":     m.refund,
				"withdraw":    m.withdraw,
				"withdraw2":   m.withdraw,
				"payout":      m.payout,
				"payout2":     m.payout,
				"identify":    m.identify,
				"setLimits":   m.setLimits,
				"setLimits2":  m.setLimits,
				"x-close":     m.close, // rapid favours the first keys: not this one
				"":            m.check,
			})
			v.requireAudit(t)
			finished = true
			// Only sequences that passed count as work done.
			ran++
			steps += m.steps
			for k, n := range m.seen {
				seen[k] += n
			}
		})
		t.Logf("%s: %d sequences, %d steps in %s (%d left out once there was enough)",
			e.Name, ran, steps, time.Since(start).Round(time.Millisecond), budget)
		if testing.Verbose() {
			lines := make([]string, 0, len(seen))
			for k, n := range seen {
				lines = append(lines, fmt.Sprintf("%6d %s", n, k))
			}
			sort.Strings(lines)
			t.Logf("outcomes:\n%s", strings.Join(lines, "\n"))
		}
		if budget == 0 && (ran < modelMinSequences || steps < modelMinSteps) {
			// rapid was asked for fewer sequences (-rapid.checks): coverage
			// needs the minimum work.
			t.Logf("%s: fewer sequences than the minimum asked for: coverage not checked", e.Name)
			return
		}
		if ran < modelMinSequences || steps < modelMinSteps {
			t.Errorf("%s: only %d sequences and %d steps in %s, want at least %d and %d: too slow a machine tests too little",
				e.Name, ran, steps, modelHardCap, modelMinSequences, modelMinSteps)
		}
		if missed := seen.missing(modelCoverage); len(missed) > 0 {
			t.Errorf("%s: %d sequences never exercised:\n\t%s", e.Name, ran, strings.Join(missed, "\n\t"))
		}
	})
}
