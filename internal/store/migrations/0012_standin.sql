-- local stand-in for 0012 (never committed)
SELECT 1;
