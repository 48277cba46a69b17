package redis

import (
	"context"
	"sort"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/frontdoorhq/frontdoor/pusher"
)

// Webhook events are journaled in Redis until delivered (pusher.WebhookJournal): a hash per node,
//
//	{p}:wh:{node}   id → {"app","url","event"}    recorded when queued, deleted once delivered
//	{p}:whorphans   nodes that left with events undelivered (a clean stop past its timeout)
//
// Delivery itself stays in the node's memory (batching, order, retries); the journal is what
// survives the node. When a node dies, the node that reaps it takes its hash over (adoptScript:
// one taker) and delivers the events, oldest first; a node that stops cleanly with events left
// lists itself in {p}:whorphans, which every node's heartbeat checks. Delivery is at least once:
// a node that dies between a delivery and its journal delete has that batch sent again.

var _ pusher.WebhookJournal = (*Broker)(nil)

// whOp is one journal change: entry set for a record, nil for a delete.
type whOp struct {
	id    uint64
	entry []byte
}

func (b *Broker) journalKey(node string) string { return b.key("wh", node) }

// RecordWebhook implements pusher.WebhookJournal.
func (b *Broker) RecordWebhook(id uint64, entry []byte) { b.journalOp(whOp{id: id, entry: entry}) }

// WebhooksDone implements pusher.WebhookJournal.
func (b *Broker) WebhooksDone(ids []uint64) {
	for _, id := range ids {
		b.journalOp(whOp{id: id})
	}
}

// journalOp never blocks: when the journal cannot keep up the event is still delivered from
// memory, only not kept for another node; that is counted.
func (b *Broker) journalOp(op whOp) {
	select {
	case b.whq <- op:
	default:
		b.journalLost.Add(1)
	}
}

// JournalLost counts webhook journal changes not written to Redis (queue full or Redis down):
// those events would not be delivered by another node should this one die.
func (b *Broker) JournalLost() uint64 { return b.journalLost.Load() }

// journaler writes journal changes in pipelined batches, in the order they were made, so a
// delete never overtakes its record. On Close it writes what is still queued.
func (b *Broker) journaler() {
	defer b.wg.Done()
	batch := make([]whOp, 0, 512)
	for {
		select {
		case <-b.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for {
				batch = batch[:0]
				for len(batch) < cap(batch) {
					select {
					case op := <-b.whq:
						batch = append(batch, op)
						continue
					default:
					}
					break
				}
				if len(batch) == 0 || b.writeJournal(ctx, batch) != nil {
					return
				}
			}
		case op := <-b.whq:
			batch = append(batch[:0], op)
		}
		for len(batch) < cap(batch) {
			select {
			case op := <-b.whq:
				batch = append(batch, op)
				continue
			default:
			}
			break
		}
		ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
		if err := b.writeJournal(ctx, batch); err != nil {
			b.setHealth(err)
		}
		cancel()
	}
}

func (b *Broker) writeJournal(ctx context.Context, batch []whOp) error {
	key := b.journalKey(b.id)
	pipe := b.rdb.Pipeline()
	for _, op := range batch {
		if op.entry != nil {
			pipe.HSet(ctx, key, strconv.FormatUint(op.id, 10), op.entry)
		} else {
			pipe.HDel(ctx, key, strconv.FormatUint(op.id, 10))
		}
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		b.journalLost.Add(uint64(len(batch)))
	}
	return err
}

// adoptScript takes a node's journal: KEYS the journal; returns id, entry pairs and deletes it,
// so exactly one caller gets the events.
var adoptScript = goredis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return h
`)

// orphanScript runs on Close: KEYS journal, orphans; ARGV node. A node leaving with events in
// its journal asks the others to take them.
var orphanScript = goredis.NewScript(`
if redis.call('HLEN', KEYS[1]) > 0 then redis.call('SADD', KEYS[2], ARGV[1]) return 1 end
return 0
`)

// adopt takes node's undelivered webhook events and hands them to this node, oldest first.
func (b *Broker) adopt(ctx context.Context, node string) {
	pairs, err := adoptScript.Run(ctx, b.rdb, []string{b.journalKey(node)}).StringSlice()
	if err != nil {
		b.setHealth(err)
		return
	}
	type rec struct {
		id    uint64
		entry []byte
	}
	recs := make([]rec, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		id, _ := strconv.ParseUint(pairs[i], 10, 64)
		recs = append(recs, rec{id, []byte(pairs[i+1])})
	}
	if len(recs) == 0 {
		return
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].id < recs[j].id })
	entries := make([][]byte, len(recs))
	for i, r := range recs {
		entries[i] = r.entry
	}
	b.log.Warn().Str("node", node).Int("events", len(entries)).Msg("cluster: taking over webhooks another node left undelivered")
	b.node.AdoptWebhooks(entries)
}

// adoptOrphans takes the journals of nodes that stopped with events undelivered, one per beat.
func (b *Broker) adoptOrphans(ctx context.Context) {
	node, err := b.rdb.SPop(ctx, b.key("whorphans")).Result()
	if err != nil || node == "" {
		return
	}
	b.adopt(ctx, node)
}

// leaveJournal is Close's part: with events left, this node is listed for the others to adopt.
func (b *Broker) leaveJournal(ctx context.Context) error {
	return orphanScript.Run(ctx, b.rdb, []string{b.journalKey(b.id), b.key("whorphans")}, b.id).Err()
}
