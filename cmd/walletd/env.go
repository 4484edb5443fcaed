package main

import (
	"fmt"
	"strconv"
	"time"
)

// envFunc reads configuration from the environment given to run.
type envFunc func(string) string

func (e envFunc) str(name, def string) string {
	if v := e(name); v != "" {
		return v
	}
	return def
}

func (e envFunc) duration(name string, def time.Duration) (time.Duration, error) {
	v := e(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive Go duration such as 30s or 15m", name, v)
	}
	return d, nil
}

func (e envFunc) boolean(name string, def bool) (bool, error) {
	v := e(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

func (e envFunc) integer(name string, def int) (int, error) {
	v := e(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a non-negative integer", name, v)
	}
	return n, nil
}
