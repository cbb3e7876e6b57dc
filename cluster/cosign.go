package cluster

import (
	"context"
	"time"
)

// cosignLoop signs the tree head with the partner's note key whenever the
// Merkle log has grown, and records the signature in the ledger. A
// checkpoint signed by a majority of partners is what lets a researcher
// trust a tree head without trusting any single node. Signing at most once
// per CosignInterval keeps the cost constant under heavy publishing: a
// signature covers every release before it.
func (n *Node) cosignLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.CosignInterval)
	defer t.Stop()
	var signed int64 // tree size last recorded by this node
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		size, err := n.cosignOnce(ctx, signed)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("co-signing checkpoint failed", "error", err)
			}
			continue
		}
		signed = size
	}
}

// cosignOnce signs the current tree head if it is larger than last and
// returns the size now recorded.
func (n *Node) cosignOnce(ctx context.Context, last int64) (int64, error) {
	if n.registered(n.cfg.ID) != rolePartner {
		return last, nil
	}
	origin, ok := n.checkpointOrigin()
	if !ok {
		return last, nil
	}
	tree, err := n.fsm.TreeHead()
	if err != nil {
		return last, err
	}
	if tree.N <= last {
		return last, nil
	}
	msg, err := SignCheckpoint(origin, tree, n.cfg.Signer)
	if err != nil {
		return last, err
	}
	cmd, err := NewCosign(n.cfg.ID, msg).Encode()
	if err != nil {
		return last, err
	}
	// Bounded, so a partitioned node keeps trying with fresh tree heads
	// rather than one stale request.
	actx, cancel := context.WithTimeout(ctx, 10*n.cfg.CosignInterval)
	defer cancel()
	res, err := n.Apply(actx, cmd)
	if err != nil {
		return last, err
	}
	if !res.OK {
		n.log.Warn("checkpoint co-signature refused", "size", tree.N, "reason", res.Refusal)
	}
	return tree.N, nil
}
