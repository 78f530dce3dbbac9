package plugin

import "sync"

// keyedMutex is one mutex per key, held only while in use: lock(k) waits
// until no other holder of k is left and returns the unlock.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*countedMutex
}

type countedMutex struct {
	sync.Mutex
	users int // holders and waiters; guarded by keyedMutex.mu
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*countedMutex{}
	}
	m := k.locks[key]
	if m == nil {
		m = &countedMutex{}
		k.locks[key] = m
	}
	m.users++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		if m.users--; m.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
