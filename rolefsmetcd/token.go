package rolefsmetcd

import (
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Token is a channel's cluster-wide fencing token: the leader key of
// the term the node won, and its create revision. Revisions only grow,
// so a later term's token is greater; and the key exists with that
// create revision exactly while the term lasts at the server, so a
// store that checks it in the same etcd transaction as a write (Guard)
// refuses the write of a leader whose term has ended, whatever that
// leader believes.
type Token struct {
	Key      string `json:"key"`
	Revision int64  `json:"revision"`
}

// Guard is the comparison that holds only while the token's term
// lasts: put it in the If of the transaction that writes on the
// leader's behalf.
func (t Token) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(t.Key), "=", t.Revision)
}

// String returns the token as key@revision.
func (t Token) String() string { return fmt.Sprintf("%s@%d", t.Key, t.Revision) }
