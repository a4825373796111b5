//go:build !linux

package app

import "time"

// processCPU and peakRSS are measured on Linux only; elsewhere load prints
// no CPU or memory figures.
func processCPU() time.Duration { return 0 }

func peakRSS() int64 { return 0 }
