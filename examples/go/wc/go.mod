module example.com/wasmd/wc

go 1.21
