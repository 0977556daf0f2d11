package rolefsmetcd

import (
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/rolefsm/rolefsm/replica"
)

// view is the node's copy of every election under the prefix, built
// from one range read and kept by one watch on the whole prefix: a node
// with many channels has one watch, not one per channel.
type view struct {
	prefix string // with its trailing "/"
	rev    int64  // the revision the view is complete up to
	chans  map[string]map[int64]candidate
}

// candidate is one key of an election: a node's lease standing for the
// channel.
type candidate struct {
	created int64          // its create revision: the lowest leads
	node    replica.NodeID // from the value; 0 if it names no node
}

func newView(prefix string) *view {
	return &view{prefix: prefix + "/", chans: make(map[string]map[int64]candidate)}
}

// key is the election key of lease on channel: the layout of
// concurrency.Election under prefix/channel.
func (v *view) key(channel string, lease int64) string { return electionKey(v.prefix, channel, lease) }

// electionKey is the key of lease on channel under prefix (with its
// trailing "/").
func electionKey(prefix, channel string, lease int64) string {
	return prefix + channel + "/" + strconv.FormatInt(lease, 16)
}

// parse splits a key under the prefix into its channel and lease. A
// key that is not an election key (written by someone else under the
// prefix) is ignored.
func (v *view) parse(key string) (channel string, lease int64, ok bool) {
	rest, ok := strings.CutPrefix(key, v.prefix)
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 {
		return "", 0, false
	}
	l, err := strconv.ParseUint(rest[i+1:], 16, 63)
	if err != nil || l == 0 {
		return "", 0, false
	}
	return rest[:i], int64(l), true
}

// nodeOf reads the node id a candidate's value names: a decimal id.
func nodeOf(value []byte) replica.NodeID {
	id, err := strconv.ParseUint(string(value), 10, 64)
	if err != nil {
		return 0
	}
	return replica.NodeID(id)
}

func (v *view) put(kv *mvccpb.KeyValue) {
	ch, lease, ok := v.parse(string(kv.Key))
	if !ok {
		return
	}
	m := v.chans[ch]
	if m == nil {
		m = make(map[int64]candidate, 1)
		v.chans[ch] = m
	}
	m[lease] = candidate{created: kv.CreateRevision, node: nodeOf(kv.Value)}
}

func (v *view) del(key []byte) {
	ch, lease, ok := v.parse(string(key))
	if !ok {
		return
	}
	if m := v.chans[ch]; m != nil {
		delete(m, lease)
		if len(m) == 0 {
			delete(v.chans, ch)
		}
	}
}

// leader returns the channel's leader: the candidate created first,
// leaving out the key of lease except (0: none), one known deleted.
func (v *view) leader(channel string, except int64) (lease int64, c candidate, ok bool) {
	for l, k := range v.chans[channel] {
		if l == except && except != 0 {
			continue
		}
		if !ok || k.created < c.created {
			lease, c, ok = l, k, true
		}
	}
	return lease, c, ok
}

// has returns lease's candidate on channel, if it stands.
func (v *view) has(channel string, lease int64) (candidate, bool) {
	c, ok := v.chans[channel][lease]
	return c, ok
}
