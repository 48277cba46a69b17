<?php

use Illuminate\Support\Facades\Route;

// Filament's default panel path and other routes under /app and /apps: all reach PHP.
Route::get('/app/dashboard', fn () => view('dashboard'));
Route::get('apps/settings', fn () => view('settings'));
Route::get('/app/{team}/billing', fn () => view('billing'));
