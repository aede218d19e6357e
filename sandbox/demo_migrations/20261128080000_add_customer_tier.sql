alter table customers add column tier text not null default 'free';
update customers set tier = 'gold' where email like '%@bigcorp.test';

-- rollback
-- alter table customers drop column tier;
